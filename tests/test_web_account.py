"""The account screen in the browser: profile and "liste rouge", devices, the audit export.

The export ("Exporter mon historique") is metadata only: the CSV the browser downloads lists
the message ids of the period and holds none of the texts (end-to-end encrypted, the server
never had them).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

import lien
from lien.protocol import errors
from tests.live import LiveNode
from tests.web import PASSWORD, Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

SDK_PASSWORD = "a long passphrase for python"


async def test_profile_devices_and_audit_export(browser: Browser, node: LiveNode, tmp_path: Path) -> None:
    doctor = await Person.open(browser, node.url)
    await doctor.sign_up("dr.morel", "Dr Julie Morel", profession="Cardiologue", city="Lyon")
    lab = await lien.Client.register(
        node.url, "labo.blanc", SDK_PASSWORD, keystore=tmp_path / "lab", display_name="Laboratoire Blanc"
    )
    async with lab:
        await lab.connect()
        # Messages both ways, one to one and in a group: their ids must be in the export, their texts not.
        texts = ["Troponine 0,8 µg/L chez M. Noël", "Je le convoque à 15 h.", "Contrôle demain matin"]
        ids = [await lab.send_text("dr.morel", texts[0])]
        await doctor.open_conversation("labo.blanc")
        await expect(doctor.messages("incoming").locator(".text")).to_have_text(texts[0])
        await doctor.send(texts[1])
        ids.append((await lab.receive(timeout=20)).id)
        team = await doctor.create_group("Cardiologie — M. Noël", [("blanc", "Laboratoire Blanc")])
        await doctor.send(texts[2])
        received = await lab.receive(timeout=20)
        assert received.group == team
        ids.append(received.id)

        # The profile, with the "liste rouge": the directory stops listing her.
        page = doctor.page
        assert [entry.user for entry in (await lab.api.directory(q="morel")).results] == ["dr.morel"]
        await page.get_by_role("button", name="Mon compte").click()
        await expect(page.get_by_label("Nom affiché")).to_have_value("Dr Julie Morel")
        await page.get_by_label("Ville").fill("Villeurbanne")
        await page.get_by_label("Liste rouge").check()
        await page.get_by_role("button", name="Enregistrer le profil").click()
        await expect(page.locator(".account-section .search-status").first).to_have_text(
            "Profil enregistré. Vous êtes sur liste rouge : l’annuaire ne vous montre plus."
        )
        assert (await lab.api.directory(q="morel")).results == []
        assert (await lab.api.profile("dr.morel")).profile.city == "Villeurbanne"

        # Her account signs in from a second place (a program); the browser lists it and signs it out.
        second = await lien.Client.login(node.url, "dr.morel", PASSWORD, keystore=tmp_path / "second")
        async with second:
            await page.get_by_role("button", name="Mon compte").click()  # opened again: the list is fresh
            devices = page.locator("li.device")
            await expect(devices).to_have_count(2)
            await expect(page.locator('li.device[data-current="true"] .tag')).to_have_text("Cet appareil")
            await page.get_by_role("button", name=f"Déconnecter lien-python (n° {second.device_id})").click()
            # The account's password is asked again; a wrong one changes nothing and keeps the form open.
            await page.get_by_label("Mot de passe de votre compte").fill("not-her-password")
            await page.get_by_role("button", name="Confirmer la déconnexion").click()
            await expect(page.locator(".account-section .search-status").nth(1)).to_have_text(
                "Mot de passe incorrect : rien n’a été changé."
            )
            await expect(devices).to_have_count(2)
            assert (await second.api.me()).user == "dr.morel"
            await doctor.screenshot("15-remove-device-password")
            await page.get_by_label("Mot de passe de votre compte").fill(PASSWORD)
            await page.get_by_role("button", name="Confirmer la déconnexion").click()
            await expect(devices).to_have_count(1)
            await expect(page.locator("li.device .name")).to_have_text("Navigateur (n° 1)")
            with pytest.raises(errors.LienError) as refused:
                await second.api.me()
            assert refused.value.code == "auth-failed"

        # The export: last three months by default, a CSV download, a printable table.
        today = date.today()
        await expect(page.get_by_label("Au (inclus)")).to_have_value(today.isoformat())
        start = await page.get_by_label("Du").input_value()
        assert date.fromisoformat(start) < today and (today - date.fromisoformat(start)).days in range(89, 93)
        async with page.expect_download() as downloading:
            await page.get_by_role("button", name="Télécharger (CSV)").click()
        download = await downloading.value
        assert download.suggested_filename == f"lien-historique-{start}-{today.isoformat()}.csv"
        content = Path(await download.path()).read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(content)))
        assert {row["message"] for row in rows} >= set(ids)
        assert not any(text in content for text in texts)
        directions = {row["message"]: row["direction"] for row in rows}
        assert (directions[ids[0]], directions[ids[1]], directions[ids[2]]) == ("received", "sent", "sent")

        await page.get_by_role("button", name="Version imprimable").click()
        table = page.locator("table.export-table")
        for message_id in ids:
            await expect(table.locator("td", has_text=message_id).first).to_be_visible()
        await expect(table.locator("th").first).to_have_text("Message (identifiant)")
        printed = await table.inner_text()
        assert not any(text in printed for text in texts)
        await page.get_by_role("heading", name="Mes appareils").evaluate(
            "element => element.scrollIntoView()"
        )
        await doctor.screenshot("13-account")
    doctor.assert_no_page_errors()
