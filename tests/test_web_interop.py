"""The browser client and the Python SDK (`lien.Client`) talk to each other, both ways.

Each side checks the other's signatures: the browser opens a body only when the Python
device's Ed25519 signature verifies (docs/protocol-crypto.md §3.8.4) and counts a receipt
only when the receiving device's signature verifies; the Python side verifies the
browser's signed payload offline with the key the directory lists for the browser's
device, and the browser's signed receipts (docs/protocol.md §10.4).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

import lien
from lien.crypto.payload import DeviceAddress
from lien.sdk.e2e import drop_session
from lien.sdk.events import Receipt
from tests.live import LiveNode
from tests.web import Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

SDK_PASSWORD = "a long passphrase for python"


async def next_receipt(client: lien.Client, message_id: str, kind: str) -> Receipt:
    while True:
        event = await client.next_event(timeout=20)
        if isinstance(event, Receipt) and event.message_id == message_id and event.kind == kind:
            return event


async def test_browser_and_python_sdk_interoperate(browser: Browser, node: LiveNode, tmp_path: Path) -> None:
    web = await Person.open(browser, node.url)
    await web.sign_up("dr.web", "Dr Anne Lemoine", profession="Cardiologue", city="Paris")
    lab = await lien.Client.register(
        node.url,
        "labo.python",
        SDK_PASSWORD,
        keystore=tmp_path / "lab",
        display_name="Laboratoire Pasteur",
        profession="Biologiste",
        city="Paris",
    )
    async with lab:
        await lab.connect()

        # Python → browser: shown once, verified, and the read receipt flows back.
        alert = "Troponine à 0,8 µg/L chez M. Noël ⚠️ : à revoir aujourd’hui."
        message_id = await lab.send_text("dr.web", alert)
        await web.open_conversation("labo.python")
        await expect(web.messages("incoming").locator(".text")).to_have_text(alert)
        await expect(web.page.locator(".conversation-header h2")).to_have_text("Laboratoire Pasteur")
        # The browser's receipts are signed by its device: the SDK checks them.
        decrypted = await next_receipt(lab, message_id, "decrypted")
        assert (decrypted.by, decrypted.verified) == ("dr.web", True)
        read = await next_receipt(lab, message_id, "read")
        assert (read.by, read.verified) == ("dr.web", True)

        # Browser → Python: the SDK decrypts it and the signature is the browser device's.
        answer = "Je le convoque cet après-midi. Merci 🙏"
        await web.send(answer)
        message = await lab.receive(timeout=20)
        assert (message.sender, message.recipient, message.text) == ("dr.web", "labo.python", answer)
        assert message.verify()
        listed = await lab.api.devices("dr.web")
        assert [device.identity_signing_key for device in listed.devices] == [message.signer_key]
        await lab.mark_read(message)
        await expect(web.messages("outgoing")).to_have_attribute("data-status", "read")

        # Both compute the same safety number.
        number = await lab.safety_number("dr.web")
        await web.page.get_by_role("button", name="Numéro de sécurité").click()
        await expect(web.page.locator(".safety-number")).to_have_text(number.digits)
        await web.page.get_by_role("button", name="Retour à la conversation").click()

        # Repair (docs/protocol.md §6.6): the lab loses its session with the browser, so the
        # browser's next message does not open there; the lab answers `decrypt-failed`, and
        # the browser opens a new session and resends it under the same server message id.
        drop_session(lab.keystore, DeviceAddress("dr.web", listed.devices[0].device))
        await web.send("Message envoyé après une perte de session.")
        repaired = await lab.receive(timeout=20)
        assert repaired.text == "Message envoyé après une perte de session."
        assert repaired.verify()
        await expect(web.messages("outgoing").last).to_have_attribute(
            "data-status", re.compile("delivered|read")
        )

        # The lab signs in a second device: the browser warns and waits for "I have checked".
        second = await lien.Client.login(node.url, "labo.python", SDK_PASSWORD, keystore=tmp_path / "lab2")
        async with second:
            await second.connect()
            warning = web.page.locator(".identity-warning")
            await expect(warning).to_contain_text("ont changé")
            await expect(web.page.locator("#composer-input")).to_be_disabled()
            await web.screenshot("07-devices-changed-warning")
            await web.page.get_by_role("button", name="J’ai vérifié").click()
            await expect(warning).to_have_count(0)
            await expect(web.page.locator("#composer-input")).to_be_enabled()

            # Now every device of the lab gets the next message.
            await web.send("Résultat du contrôle demain matin ?")
            first_copy = await lab.receive(timeout=20)
            second_copy = await second.receive(timeout=20)
            assert first_copy.text == second_copy.text == "Résultat du contrôle demain matin ?"
            assert first_copy.verify() and second_copy.verify()
            await expect(web.messages("outgoing").last).to_have_attribute(
                "data-status", re.compile("delivered|read")
            )

            # And a message from the new device opens in the browser too.
            await second.send_text("dr.web", "Oui, avant 9 h.")
            await expect(web.messages("incoming").last.locator(".text")).to_have_text("Oui, avant 9 h.")
    web.assert_no_page_errors()


async def test_browser_uploads_prekeys_when_they_run_low(
    browser: Browser, node: LiveNode, tmp_path: Path
) -> None:
    """Claims drain the browser device's one-time prekeys; on `prekeys_low` it uploads more (§6.9)."""
    web = await Person.open(browser, node.url)
    await web.sign_up("dr.prekeys", "Dr Yves Clément", profession="Pédiatre", city="Brest")
    claimer = await lien.Client.register(
        node.url, "labo.claims", SDK_PASSWORD, keystore=tmp_path / "claims", display_name="Labo"
    )
    async with claimer:
        handed_out = 0
        for _ in range(90):  # the device registered 100; below 20 the server pushes `prekeys_low`
            bundles = await claimer.api.claim_keys("dr.prekeys")
            handed_out += bundles.bundles[0].prekey is not None
        assert handed_out == 90
        deadline = asyncio.get_running_loop().time() + 20
        while handed_out <= 100:  # more than it registered: the browser uploaded a new batch
            assert asyncio.get_running_loop().time() < deadline, "no prekeys were uploaded"
            bundles = await claimer.api.claim_keys("dr.prekeys")
            if bundles.bundles[0].prekey is None:
                await asyncio.sleep(0.05)  # exhausted for now: poll until the upload lands
            else:
                handed_out += 1
    web.assert_no_page_errors()
