"""A browser whose device was removed from the account (from another device) starts afresh, with consent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

import lien
from tests.live import LiveNode
from tests.web import PASSWORD, Person

pytestmark = [pytest.mark.browser, pytest.mark.live]


async def test_a_removed_browser_device_is_told_so_and_can_become_a_new_device(
    browser: Browser, node: LiveNode, tmp_path: Path
) -> None:
    doctor = await Person.open(browser, node.url)
    await doctor.sign_up("dr.roux", "Dr Paul Roux", profession="Pédiatre", city="Nantes")

    # From his phone (a program here), he removes the browser's device: it was on a shared computer.
    phone = await lien.Client.login(node.url, "dr.roux", PASSWORD, keystore=tmp_path / "phone")
    async with phone:
        listed = await phone.api.my_devices()
        [browser_device] = [device.device for device in listed.devices if device.device != phone.device_id]
        await phone.api.remove_device(browser_device, PASSWORD)

        # The open page is signed out at once, in plain words, back at the unlock screen.
        await expect(doctor.page.locator("p.notice")).to_have_text(re.compile("révoquée. Reconnectez-vous"))
        await expect(doctor.page.get_by_role("heading", name="Déverrouiller")).to_be_visible()
        await doctor.page.get_by_label("Mot de passe").fill(PASSWORD)
        await doctor.page.get_by_role("button", name="Déverrouiller").click()
        alert = doctor.page.get_by_role("alert")
        await expect(alert).to_contain_text("Cet appareil a été retiré de votre compte")
        await doctor.screenshot("14-removed-device")

        # With his consent, the browser erases what it held and becomes a new device.
        await doctor.page.get_by_role(
            "button", name="Effacer les données de ce navigateur et me reconnecter"
        ).click()
        await doctor.wait_connected()
        after = await phone.api.my_devices()
        new_devices = [device.device for device in after.devices if device.device != phone.device_id]
        assert len(new_devices) == 1 and new_devices[0] != browser_device

        # It works as a device of the account again: a colleague's message reaches it.
        colleague = await lien.Client.register(
            node.url, "ide.leroy", PASSWORD, keystore=tmp_path / "colleague", display_name="IDE Leroy"
        )
        async with colleague:
            await colleague.connect()
            await colleague.send_text("dr.roux", "Pansement refait, plaie propre.")
        await doctor.open_conversation("ide.leroy")
        await expect(doctor.messages("incoming").locator(".text")).to_have_text(
            "Pansement refait, plaie propre."
        )
    doctor.assert_no_page_errors()
