"""Two health professionals chat in the browser: ticks, typing, presence, reload, reconnect."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.live import LiveNode
from tests.web import PASSWORD, Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

ALERT = "Kaliémie 6,8 mmol/L chez Mme Lefèvre 🧪 — rappelez-moi."
ANSWER = "Bien reçu, je l’appelle tout de suite. Merci ! 👍"


async def test_two_browsers_chat_read_ticks_and_reload_keeps_history(
    browser: Browser, node: LiveNode
) -> None:
    lab = await Person.open(browser, node.url)
    await lab.sign_up(
        "labo.durand", "Laboratoire Durand", profession="Biologiste", city="Lyon", screenshot="01-sign-up"
    )
    doctor = await Person.open(browser, node.url)
    await doctor.sign_up(
        "dr.martin", "Dr Hélène Martin", profession="Médecin généraliste", city="Lyon", rpps="10101010101"
    )

    # The lab finds the doctor in the directory (accents and case ignored) and writes.
    await lab.write_to("helene", "Dr Hélène Martin")
    await lab.send(ALERT)
    sent = lab.messages("outgoing").first
    await expect(sent).to_have_attribute("data-status", re.compile("sent|delivered"))
    await expect(sent).to_have_attribute("data-status", "delivered")

    # The doctor sees an unread conversation and the title badge, then reads it.
    item = doctor.page.locator('button.conversation-item[data-peer="labo.durand"]')
    await expect(item.locator(".unread")).to_have_text("1")
    await expect(doctor.page).to_have_title("(1) Lien")
    await doctor.screenshot("03-conversation-list-unread")
    await doctor.open_conversation("labo.durand")
    await expect(doctor.messages("incoming").locator(".text")).to_have_text(ALERT)
    await expect(doctor.page).to_have_title("Lien")

    # The read receipt reaches the lab: the tick turns to "read".
    await expect(sent).to_have_attribute("data-status", "read")
    await expect(sent.locator(".tick")).to_have_attribute("aria-label", "Lu")

    # Typing shows on the other side while the doctor writes; presence says online.
    await doctor.page.locator("#composer-input").press_sequentially("Bien")
    await expect(lab.page.locator(".typing")).to_have_text("Dr Hélène Martin écrit…")
    await expect(lab.page.locator(".conversation-header .presence")).to_have_text("En ligne")
    await doctor.send(ANSWER)
    await expect(lab.messages("incoming").locator(".text")).to_have_text(ANSWER)
    await expect(doctor.messages("outgoing").first).to_have_attribute("data-status", "read")
    await lab.screenshot("04-conversation-read-ticks")

    # A reload keeps keys and history: the password unlocks the keystore in IndexedDB.
    await doctor.page.reload()
    await expect(doctor.page.get_by_role("heading", name="Déverrouiller")).to_be_visible()
    await doctor.page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    await doctor.page.get_by_role("button", name="Déverrouiller").click()
    await expect(doctor.page.get_by_role("alert")).to_have_text(re.compile("Mot de passe incorrect"))
    await doctor.screenshot("05-unlock-wrong-password")
    await doctor.page.get_by_label("Mot de passe").fill(PASSWORD)
    await doctor.page.get_by_role("button", name="Déverrouiller").click()
    await doctor.wait_connected()
    await doctor.open_conversation("labo.durand")
    await expect(doctor.messages("incoming").locator(".text")).to_have_text(ALERT)
    await expect(doctor.messages("outgoing").locator(".text")).to_have_text(ANSWER)
    await expect(doctor.messages("outgoing")).to_have_attribute("data-status", "read")

    # After the reload the same device keeps talking (its sessions came back from the keystore).
    await doctor.send("Patiente rappelée à 14 h.")
    await expect(lab.messages("incoming")).to_have_count(2)
    await expect(lab.messages("incoming").last.locator(".text")).to_have_text("Patiente rappelée à 14 h.")
    await expect(doctor.messages("outgoing").last).to_have_attribute("data-status", "read")

    # The safety number is the same 60 digits on both sides.
    await lab.page.get_by_role("button", name="Numéro de sécurité").click()
    await doctor.page.get_by_role("button", name="Numéro de sécurité").click()
    lab_number = lab.page.locator(".safety-number")
    await expect(lab_number).to_have_text(re.compile(r"^(\d{5}){12}$"))
    await expect(doctor.page.locator(".safety-number")).to_have_text(re.compile(r"^(\d{5}){12}$"))
    assert await lab_number.text_content() == await doctor.page.locator(".safety-number").text_content()
    await lab.screenshot("06-safety-number")

    # Sign out, then sign in again with the same browser device.
    await doctor.page.get_by_role("button", name="Se déconnecter").click()
    await expect(doctor.page.get_by_role("heading", name="Déverrouiller")).to_be_visible()
    await doctor.page.get_by_label("Mot de passe").fill(PASSWORD)
    await doctor.page.get_by_role("button", name="Déverrouiller").click()
    await doctor.wait_connected()
    lab.assert_no_page_errors()
    doctor.assert_no_page_errors()


async def test_message_typed_while_the_node_is_down_is_delivered_once(
    browser: Browser, node: LiveNode
) -> None:
    nurse = await Person.open(browser, node.url)
    await nurse.sign_up("inf.petit", "Claire Petit", profession="Infirmière", city="Lyon")
    doctor = await Person.open(browser, node.url)
    await doctor.sign_up("dr.roux", "Dr Paul Roux", profession="Médecin généraliste", city="Lyon")

    await nurse.write_to("roux", "Dr Paul Roux")
    await nurse.send("Pansement refait ce matin.")
    await expect(doctor.messages("incoming")).to_have_count(0)
    await doctor.open_conversation("inf.petit")
    await expect(doctor.messages("incoming")).to_have_count(1)

    # The node goes away: both pages show it, and a message typed meanwhile waits.
    node.stop()
    await expect(nurse.page.locator(".connection")).to_have_attribute(
        "data-state", re.compile("offline|connecting")
    )
    await nurse.send("Fièvre à 38,9 °C ce soir : je vous rappelle ?")
    pending = nurse.messages("outgoing").last
    await expect(pending).to_have_attribute("data-status", "pending")
    await nurse.screenshot("08-offline-message-pending")

    # It comes back (same port, same database): the message goes out once, and is read.
    node.start()
    await nurse.wait_connected()
    await doctor.wait_connected()
    await expect(pending).to_have_attribute("data-status", "read")
    await expect(doctor.messages("incoming")).to_have_count(2)
    await expect(doctor.messages("incoming").last.locator(".text")).to_have_text(
        "Fièvre à 38,9 °C ce soir : je vous rappelle ?"
    )
    await expect(nurse.messages("outgoing")).to_have_count(2)

    # A reload of the receiver shows it once too (deduplicated by server message id).
    await doctor.page.reload()
    await doctor.page.get_by_label("Mot de passe").fill(PASSWORD)
    await doctor.page.get_by_role("button", name="Déverrouiller").click()
    await doctor.wait_connected()
    await doctor.open_conversation("inf.petit")
    await expect(doctor.messages("incoming")).to_have_count(2)
    nurse.assert_no_page_errors()
    doctor.assert_no_page_errors()
