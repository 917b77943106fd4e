"""New messages while the tab is in the background: title badge and a browser notification.

Headless Chromium shows no notification anyone could observe, so the page's
``Notification`` is replaced, before the app loads, by one that records what
the app asks for; ``document.visibilityState`` is driven the same way. The
app's own code decides when to notify, what to say and what a click does.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.live import LiveNode
from tests.web import Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

ALERT = "Kaliémie 6,8 mmol/L chez Mme Lefèvre — rappelez-moi."

RECORDING_NOTIFICATIONS = """
window.__notifications = [];
window.Notification = class {
  static permission = 'granted';
  static requestPermission() { return Promise.resolve('granted'); }
  constructor(title, options) {
    this.title = title;
    this.body = options.body;
    this.tag = options.tag;
    window.__notifications.push(this);
  }
  close() { this.closed = true; }
};
let hidden = false;
Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
Object.defineProperty(document, 'hidden', { get: () => hidden });
window.__setHidden = (value) => {
  hidden = value;
  document.dispatchEvent(new Event('visibilitychange'));
};
"""


async def test_a_message_in_a_background_tab_raises_a_notification_that_opens_it(
    browser: Browser, node: LiveNode
) -> None:
    doctor = await Person.open(browser, node.url, init_script=RECORDING_NOTIFICATIONS)
    await doctor.sign_up("dr.martin", "Dr Hélène Martin", profession="Médecin généraliste", city="Lyon")
    lab = await Person.open(browser, node.url)
    await lab.sign_up("labo.durand", "Laboratoire Durand", profession="Biologiste", city="Lyon")

    await doctor.page.evaluate("window.__setHidden(true)")
    await lab.write_to("helene", "Dr Hélène Martin")
    await lab.send(ALERT)

    await expect(doctor.page).to_have_title("(1) Lien")
    await doctor.page.wait_for_function("window.__notifications.length === 1")
    shown = await doctor.page.evaluate(
        "window.__notifications.map(({title, body, tag}) => ({title, body, tag}))"
    )
    # The sender's name only: a notification may show on a shared screen, the text never.
    assert shown == [
        {"title": "Lien", "body": "Nouveau message de Laboratoire Durand", "tag": "lien-Laboratoire Durand"}
    ]
    assert "Kaliémie" not in str(shown)

    # A click brings the conversation up and reads it.
    await doctor.page.evaluate("window.__setHidden(false)")
    await doctor.page.evaluate("window.__notifications[0].onclick()")
    await expect(doctor.messages("incoming").locator(".text")).to_have_text(ALERT)
    await expect(doctor.page).to_have_title("Lien")
    assert await doctor.page.evaluate("window.__notifications[0].closed") is True
    await expect(lab.messages("outgoing").first).to_have_attribute("data-status", "read")

    # In view, with the conversation open, a new message raises no notification.
    await lab.send("Deuxième résultat à suivre.")
    await expect(doctor.messages("incoming")).to_have_count(2)
    assert await doctor.page.evaluate("window.__notifications.length") == 1
    doctor.assert_no_page_errors()
    lab.assert_no_page_errors()
