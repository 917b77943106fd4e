"""Care-team groups in the browser, with the Python SDK as a third member (docs/protocol-group.md).

Two browsers and one `lien.Client` share a group: messages go every way, each side checks
the others' signatures (the SDK verifies the browsers' signed group payloads against the
keys the directory lists; the browsers refuse a body whose signature fails and show the
copy its sender repairs); per-member read status; typing. Then the membership changes in
the browser: roles, a refusal in plain words, a member who joins and cannot read what came
before, a member removed who can neither send nor read what comes after, a rename, a member
who leaves.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

import lien
from lien.crypto.errors import CryptoError
from lien.crypto.group import SenderKeyReceiver
from lien.crypto.payload import Conversation, DeviceAddress
from lien.keystore import Keystore, SentRecord
from lien.protocol import errors
from tests.live import LiveNode
from tests.web import PASSWORD, Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

SDK_PASSWORD = "a long passphrase for python"
TEAM = "Mme Lefèvre — soins à domicile"


def stored_group_body(data_dir: Path, message_id: str) -> bytes:
    """The one ciphertext the server stored for a group message."""
    with sqlite3.connect(data_dir / "lien.db") as connection:
        (body,) = connection.execute("SELECT body FROM messages WHERE id = ?", (message_id,)).fetchone()
    return bytes(body)


async def signing_key_of(client: lien.Client, username: str) -> bytes:
    listed = await client.api.devices(username)
    assert len(listed.devices) == 1
    return listed.devices[0].identity_signing_key


async def test_two_browsers_and_the_sdk_talk_in_a_care_team(
    browser: Browser, node: LiveNode, tmp_path: Path
) -> None:
    gp = await Person.open(browser, node.url)
    await gp.sign_up("dr.martin", "Dr Hélène Martin", profession="Médecin généraliste", city="Lyon")
    nurse = await Person.open(browser, node.url)
    await nurse.sign_up("inf.petit", "Claire Petit", profession="Infirmière", city="Lyon")
    lab = await lien.Client.register(
        node.url,
        "labo.durand",
        SDK_PASSWORD,
        keystore=tmp_path / "lab",
        display_name="Laboratoire Durand",
        profession="Biologiste",
        city="Lyon",
    )
    async with lab:
        await lab.connect()
        team = await gp.create_group(
            TEAM, [("petit", "Claire Petit"), ("durand", "Laboratoire Durand")], screenshot="10-group-create"
        )
        await expect(gp.page.locator(".conversation-header .sub")).to_have_text(
            "3 membres : Vous, Claire Petit, Laboratoire Durand"
        )

        # The doctor writes: the nurse's browser and the lab's SDK read it; the SDK checks the signature.
        first = "Pansement à refaire demain 9 h ; kaliémie à contrôler 🧪"
        await gp.send(first)
        item = nurse.page.locator(f'button.conversation-item[data-peer="{team}"]')
        await expect(item.locator(".item-name")).to_have_text(TEAM)
        await expect(item.locator(".unread")).to_have_text("1")
        got = await lab.receive(timeout=20)
        assert (got.group, got.sender, got.text) == (team, "dr.martin", first)
        assert got.verify() and got.signer_key == await signing_key_of(lab, "dr.martin")
        await nurse.open_group(team)
        incoming = nurse.messages("incoming")
        await expect(incoming.locator(".text")).to_have_text(first)
        await expect(incoming.locator(".sender")).to_have_text("Dr Hélène Martin")
        await expect(nurse.system_lines().first).to_contain_text("Dr Hélène Martin a créé le groupe")

        # Read by the nurse (she has the group open) and by the lab: "Lu par 2 sur 2".
        await lab.mark_read(got)
        sent = gp.messages("outgoing").first
        await expect(sent).to_have_attribute("data-status", "read")
        await expect(sent.locator(".receipts summary")).to_have_text("Lu par 2 sur 2")

        # The lab (SDK) writes: both browsers show it under the lab's name.
        answer = "Kaliémie 6,8 mmol/L à 8 h 10 ⚠️"
        await lab.send_text(team, answer)
        for person in (gp, nurse):
            await expect(person.messages("incoming").last.locator(".text")).to_have_text(answer)
            await expect(person.messages("incoming").last.locator(".sender")).to_have_text(
                "Laboratoire Durand"
            )

        # The nurse types, then writes: the doctor sees both; the SDK verifies her signature.
        await nurse.page.locator("#composer-input").press_sequentially("Je passe")
        await expect(gp.page.locator(".typing")).to_have_text("Claire Petit écrit…")
        await nurse.send("Je passe à 9 h 15 et je rappelle le labo.")
        await expect(gp.messages("incoming").last.locator(".text")).to_have_text(
            "Je passe à 9 h 15 et je rappelle le labo."
        )
        from_nurse = await lab.receive(timeout=20)
        assert from_nurse.sender == "inf.petit" and from_nurse.verify()
        assert from_nurse.signer_key == await signing_key_of(lab, "inf.petit")
        await lab.mark_read(from_nurse)
        await expect(nurse.messages("outgoing").last).to_have_attribute("data-status", "read")

        await gp.page.locator(".receipts summary").first.click()
        await expect(gp.page.locator('.receipts li[data-user="inf.petit"]').first).to_have_text(
            re.compile(r"^Claire Petit : lu \(\d\d:\d\d\)$")
        )
        await gp.screenshot("11-group-conversation")

        # The lab loses the doctor's sender key: her next message does not open there, the lab
        # answers decrypt-failed, and her browser resends it pairwise; the one after carries the key again.
        gp_device = (await lab.api.devices("dr.martin")).devices[0].device
        lab.keystore.set_sender_key_receiver(f"{team}/dr.martin/{gp_device}", None)
        lost = "Envoyé après la perte de la clé du groupe par le labo."
        await gp.send(lost)
        repaired_copy = await lab.receive(timeout=20)
        assert (repaired_copy.text, repaired_copy.group) == (lost, team) and repaired_copy.verify()
        await gp.send("Et le message suivant.")
        assert (await lab.receive(timeout=20)).text == "Et le message suivant."

        # A body whose signature does not verify is refused by both browsers, which ask for a
        # repair: the lab sends the message again to each, pairwise, and each shows it once.
        tampered_text = "Contrôle à J+2, même heure."
        frame, _ = await lab._build_group_send(
            team, "tampered-1", tampered_text, 1_700_000_000_000, refresh=False
        )
        body = bytearray(frame.body)
        body[20] ^= 0x01
        damaged = type(frame)(
            id=frame.id, group=frame.group, epoch=frame.epoch, body=bytes(body), keys=frame.keys
        )
        accepted = await lab._link.until_accepted(damaged, await lab._link.dispatch(damaged))
        lab.keystore.remember_sent(
            accepted.message, SentRecord(team, "tampered-1", 1_700_000_000_000, tampered_text)
        )
        for person in (gp, nurse):
            await expect(person.page.locator(".toast").first).to_contain_text("n’a pas pu être déchiffré")
            repaired = person.messages("incoming").filter(has_text=tampered_text)
            await expect(repaired).to_have_count(1)
            await expect(repaired).to_have_attribute("data-id", accepted.message)

        # A reload keeps the group, its history and the keys: the nurse still reads the lab.
        await nurse.page.reload()
        await nurse.page.get_by_label("Mot de passe").fill(PASSWORD)
        await nurse.page.get_by_role("button", name="Déverrouiller").click()
        await nurse.wait_connected()
        await nurse.open_group(team)
        await expect(nurse.messages("incoming").filter(has_text=tampered_text)).to_have_count(1)
        await lab.send_text(team, "Après rechargement : tout est bien arrivé ?")
        await expect(nurse.messages("incoming").last.locator(".text")).to_have_text(
            "Après rechargement : tout est bien arrivé ?"
        )
    gp.assert_no_page_errors()
    nurse.assert_no_page_errors()


async def test_roles_joining_removal_rename_and_leaving(
    browser: Browser, node: LiveNode, tmp_path: Path
) -> None:
    gp = await Person.open(browser, node.url)
    await gp.sign_up("dr.martin", "Dr Hélène Martin", profession="Médecin généraliste", city="Lyon")
    nurse = await Person.open(browser, node.url)
    await nurse.sign_up("inf.petit", "Claire Petit", profession="Infirmière", city="Lyon")
    lab = await lien.Client.register(
        node.url, "labo.durand", SDK_PASSWORD, keystore=tmp_path / "lab", display_name="Laboratoire Durand"
    )
    physio = await lien.Client.register(
        node.url, "kine.roux", SDK_PASSWORD, keystore=tmp_path / "physio", display_name="Paul Roux"
    )
    async with lab, physio:
        await lab.connect()
        await physio.connect()
        team = await gp.create_group(TEAM, [("petit", "Claire Petit"), ("durand", "Laboratoire Durand")])
        before = "Avant l’arrivée du kiné : résultats du 12."
        await gp.send(before)
        before_id = (await lab.receive(timeout=20)).id
        await nurse.open_group(team)
        await expect(nurse.messages("incoming").locator(".text")).to_have_text(before)

        # The owner names the nurse administrator.
        await gp.page.get_by_role("button", name="Membres").click()
        await gp.page.get_by_role("button", name="Nommer Claire Petit administrateur").click()
        await expect(gp.page.locator('li.member[data-user="inf.petit"]')).to_have_attribute(
            "data-role", "admin"
        )
        await expect(gp.page.locator('li.member[data-user="inf.petit"] .role')).to_have_text("Administrateur")

        # An admin may add members, not admins: the server's refusal is shown in plain words.
        page = nurse.page
        await page.get_by_role("button", name="Membres").click()
        await expect(page.locator(".my-role")).to_have_text("Administrateur")
        await page.get_by_label("Rôle du nouveau membre").select_option("admin")
        await page.get_by_label("Ou son identifiant").fill("kine.roux")
        await page.get_by_role("button", name="Ajouter cet identifiant").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "Votre rôle dans ce groupe ne permet pas cette modification : "
            "demandez-la au propriétaire du groupe ou à un administrateur."
        )
        await page.get_by_label("Rôle du nouveau membre").select_option("member")
        await page.get_by_label("Ou son identifiant").fill("kine.roux")
        await page.get_by_role("button", name="Ajouter cet identifiant").click()
        await expect(page.locator('li.member[data-user="kine.roux"]')).to_have_attribute(
            "data-role", "member"
        )

        # The physiotherapist joined: he gets what is sent from now on, and cannot open what came before.
        await gp.page.get_by_role("button", name="Retour au groupe").click()
        await expect(gp.system_lines().last).to_have_text(re.compile("^Claire Petit a ajouté Paul Roux · "))
        welcome = "Bienvenue à M. Roux : séances lundi et jeudi."
        await gp.send(welcome)
        joined = await physio.receive(timeout=20)
        assert (joined.text, joined.group) == (welcome, team) and joined.verify()
        with pytest.raises(TimeoutError):
            await physio.receive(timeout=0.5)
        gp_device = DeviceAddress("dr.martin", (await physio.api.devices("dr.martin")).devices[0].device)
        receiver = SenderKeyReceiver.from_bytes(
            physio.keystore.sender_key_receiver(f"{team}/dr.martin/{gp_device.device}") or b""
        )
        with pytest.raises(CryptoError) as earlier:
            receiver.decrypt(
                stored_group_body(tmp_path, before_id),
                delivered_by=gp_device,
                conversation=Conversation.group(team),
            )
        assert earlier.value.code == "unknown-sender-key"  # the doctor's browser rotated when he joined
        assert (await lab.receive(timeout=20)).text == welcome

        # The owner removes the lab in the browser: the lab can no longer write, nor read what follows.
        await gp.page.get_by_role("button", name="Membres").click()
        await gp.page.get_by_role("button", name="Retirer Laboratoire Durand du groupe").click()
        await gp.page.get_by_role("button", name="Confirmer le retrait de Laboratoire Durand").click()
        await expect(gp.page.locator('li.member[data-user="labo.durand"]')).to_have_count(0)
        await gp.screenshot("12-group-members")
        await gp.page.get_by_role("button", name="Retour au groupe").click()
        await expect(gp.system_lines().last).to_have_text(
            re.compile("^Vous avez retiré Laboratoire Durand du groupe")
        )
        removal = await lab.next_event(timeout=20)
        while not (isinstance(removal, lien.GroupChanged) and removal.event == "member-removed"):
            removal = await lab.next_event(timeout=20)
        with pytest.raises(errors.NotAMember):
            await lab.send_text(team, "Encore une question ?")
        after = "Après le départ du labo : nouvelle ordonnance."
        await gp.send(after)
        preview = nurse.page.locator(f'button.conversation-item[data-peer="{team}"] .item-preview')
        await expect(preview).to_have_text(f"Dr Hélène Martin : {after}")
        assert (await physio.receive(timeout=20)).text == after
        with pytest.raises(TimeoutError):
            await lab.receive(timeout=0.5)
        after_id = await gp.messages("outgoing").last.get_attribute("data-id")
        assert after_id
        lab_gp = DeviceAddress("dr.martin", gp_device.device)
        await lab.close()
        held = Keystore.open(tmp_path / "lab", SDK_PASSWORD).sender_key_receiver(
            f"{team}/dr.martin/{gp_device.device}"
        )
        assert held is not None, "the lab did hold the doctor's previous sender key"
        with pytest.raises(CryptoError) as unreadable:
            SenderKeyReceiver.from_bytes(held).decrypt(
                stored_group_body(tmp_path, after_id),
                delivered_by=lab_gp,
                conversation=Conversation.group(team),
            )
        assert unreadable.value.code == "unknown-sender-key"  # the doctor's browser rotated its key

        # The administrator renames the group, then leaves it.
        await page.get_by_label("Nouveau nom").fill("Mme Lefèvre — suivi post-opératoire")
        await page.get_by_role("button", name="Renommer").click()
        await expect(gp.page.locator(".conversation-header h2")).to_have_text(
            "Mme Lefèvre — suivi post-opératoire"
        )
        await expect(gp.system_lines().last).to_have_text(
            re.compile("^Claire Petit a renommé le groupe en « Mme Lefèvre — suivi post-opératoire »")
        )
        await page.get_by_role("button", name="Quitter le groupe").click()
        await page.get_by_role("button", name="Confirmer : quitter le groupe").click()
        await expect(page.locator("#composer-input")).to_be_disabled()
        await expect(page.locator(".warning-area .notice")).to_contain_text(
            "Vous ne faites plus partie de ce groupe"
        )
        await expect(gp.system_lines().last).to_have_text(re.compile("^Claire Petit a quitté le groupe"))
        await expect(gp.page.locator(".conversation-header .sub")).to_have_text("2 membres : Vous, Paul Roux")
    gp.assert_no_page_errors()
    nurse.assert_no_page_errors()
