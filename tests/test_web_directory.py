"""Finding colleagues in the browser, the "liste rouge", and server errors in plain words."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from lien.protocol import limits
from tests.inprocess import register
from tests.live import LiveNode
from tests.web import PASSWORD, Person

pytestmark = [pytest.mark.browser, pytest.mark.live]


async def test_directory_search_and_unlisted(browser: Browser, node: LiveNode) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        await register(
            http, "dr.bernard", display_name="Dr Éric Bernard", profession="Cardiologue", city="Lyon"
        )
        await register(
            http, "dr.leroy", display_name="Dr Inès Leroy", profession="Cardiologue", city="Villeurbanne"
        )
        await register(
            http, "ph.moreau", display_name="Pharmacie Moreau", profession="Pharmacien", city="Lyon"
        )
    doctor = await Person.open(browser, node.url)
    await doctor.sign_up("dr.garcia", "Dr Lucas Garcia", profession="Médecin généraliste", city="Lyon")
    secret = await Person.open(browser, node.url)
    await secret.sign_up(
        "dr.discret", "Dr Jeanne Discret", profession="Cardiologue", city="Lyon", unlisted=True
    )

    # By profession and city, case and accents ignored: the unlisted cardiologist is not found.
    await doctor.search(profession="cardio", city="LYON")
    results = doctor.page.locator("li.result")
    await expect(results).to_have_count(1)
    await expect(results.first.locator(".name")).to_have_text("Dr Éric Bernard")
    await expect(results.first.locator(".sub").first).to_have_text("Cardiologue · Lyon")
    await doctor.screenshot("02-directory-search")

    # By name, with or without the accent.
    await doctor.search(name="ines")
    await expect(results).to_have_count(1)
    await expect(results.first.locator(".name")).to_have_text("Dr Inès Leroy")
    await doctor.search(name="Discret")
    await expect(results).to_have_count(0)
    await expect(doctor.page.locator(".search-status")).to_have_text("Aucun professionnel ne correspond.")

    # "Liste rouge" users are still reachable by their username.
    await doctor.page.get_by_label("Écrire à un identifiant").fill("dr.discret")
    await doctor.page.get_by_role("button", name="Ouvrir la conversation").click()
    await expect(doctor.page.locator(".conversation-header h2")).to_have_text("Dr Jeanne Discret")
    await doctor.send("Bonjour, un avis sur un ECG ?")
    await secret.open_conversation("dr.garcia")
    await expect(secret.messages("incoming").locator(".text")).to_have_text("Bonjour, un avis sur un ECG ?")
    doctor.assert_no_page_errors()
    secret.assert_no_page_errors()


async def test_server_errors_are_shown_in_plain_words(browser: Browser, node: LiveNode) -> None:
    first = await Person.open(browser, node.url)
    await first.sign_up("dr.blanc", "Dr Marie Blanc", profession="Pédiatre", city="Nantes")

    # A wrong password, in a browser that holds no keystore for the account: the server says no.
    other = await Person.open(browser, node.url)
    await other.sign_in("dr.blanc", "ce n'est pas le mot de passe")
    alert = other.page.get_by_role("alert")
    await expect(alert).to_have_text("Identifiant ou mot de passe incorrect.")
    await other.screenshot("09-server-error-plain-words")

    # Ten wrong passwords on one account: the server takes one more try a minute, and says so.
    sign_in_button = other.page.get_by_role("button", name="Se connecter", exact=True).last
    for _ in range(limits.PASSWORD_ATTEMPTS_BURST - 1):
        async with other.page.expect_response("**/v1/login") as answered:
            await sign_in_button.click()
        assert (await answered.value).status == 401
    async with other.page.expect_response("**/v1/login") as refused:
        await sign_in_button.click()
    assert (await refused.value).status == 429
    await expect(alert).to_have_text(re.compile(r"^Trop de tentatives ; réessayez dans \d+ s\.$"))

    # A username that is taken.
    await other.page.get_by_role("tab", name="Créer un compte").click()
    await other.page.get_by_label("Identifiant").fill("dr.blanc")
    await other.page.get_by_label("Mot de passe").fill(PASSWORD)
    await other.page.get_by_label("Nom affiché").fill("Quelqu’un d’autre")
    await other.page.get_by_role("button", name="Créer mon compte").click()
    await expect(other.page.get_by_role("alert")).to_have_text(
        "Cet identifiant est déjà pris : choisissez-en un autre."
    )

    # An unknown correspondent.
    await first.page.get_by_role("button", name="Rechercher un confrère").click()
    await first.page.get_by_label("Écrire à un identifiant").fill("personne.inconnue")
    await first.page.get_by_role("button", name="Ouvrir la conversation").click()
    await expect(first.page.get_by_role("alert")).to_have_text("Ce correspondant n’existe pas.")

    for person in (first, other):
        text = await person.page.locator("body").inner_text()
        assert not re.search(r"Traceback|Error:|at \w+ \(|undefined|\[object", text), text
        person.assert_no_page_errors()
