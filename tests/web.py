"""The browser client under test: a real Chromium driven by Playwright, against live nodes.

The browser is the system Chromium (``LIEN_CHROMIUM``, else ``/usr/bin/chromium``, else
Playwright's own); ``playwright install`` is never run. Helpers here act as a person
would (labels, roles, visible text) and wait for conditions, never for fixed times.
Screenshots of the main screens go to ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

from tests.databases import sqlite_url
from tests.live import LiveNode

PASSWORD = "un mot de passe assez long"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000
"""Every wait in these tests: generous, since a failing one fails the test instead of hanging it."""

expect.set_options(timeout=TIMEOUT_MS)


def chromium_path() -> str | None:
    """``LIEN_CHROMIUM``, else the system Chromium, else None (Playwright's own browser)."""
    configured = os.environ.get("LIEN_CHROMIUM")
    if configured:
        return configured
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LiveNode]:
    """One live node on SQLite serving the web client; stopped afterwards."""
    started = LiveNode(database_url=sqlite_url(tmp_path), data_dir=tmp_path, name="web").start()
    yield started
    started.stop()


class Person:
    """One browser profile (its own IndexedDB) on one page."""

    def __init__(self, context: BrowserContext, page: Page, base_url: str) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    @classmethod
    async def open(cls, browser: Browser, base_url: str, *, init_script: str | None = None) -> Person:
        """A fresh profile on the app; ``init_script`` runs in the page before the app's own scripts."""
        context = await browser.new_context(viewport={"width": 1100, "height": 680}, locale="fr-FR")
        if init_script is not None:
            await context.add_init_script(init_script)
        page = await context.new_page()
        person = cls(context, page, base_url)
        await page.goto(base_url)
        await expect(page.get_by_role("heading", name="Lien", exact=True)).to_be_visible()
        return person

    async def sign_up(
        self,
        username: str,
        display_name: str,
        *,
        profession: str = "",
        city: str = "",
        organisation: str = "",
        rpps: str = "",
        unlisted: bool = False,
        screenshot: str | None = None,
    ) -> None:
        page = self.page
        await page.get_by_role("tab", name="Créer un compte").click()
        await page.get_by_label("Identifiant").fill(username)
        await page.get_by_label("Mot de passe").fill(PASSWORD)
        await page.get_by_label("Nom affiché").fill(display_name)
        await page.get_by_label("Profession").fill(profession)
        await page.get_by_label("N° RPPS ou ADELI").fill(rpps)
        await page.get_by_label("Établissement ou cabinet").fill(organisation)
        await page.get_by_label("Ville").fill(city)
        if unlisted:
            await page.get_by_label("Liste rouge").check()
        if screenshot:
            await self.screenshot(screenshot, full_page=True)
        await page.get_by_role("button", name="Créer mon compte").click()
        await self.wait_connected()

    async def sign_in(self, username: str, password: str = PASSWORD) -> None:
        await self.page.get_by_label("Identifiant").fill(username)
        await self.page.get_by_label("Mot de passe").fill(password)
        await self.page.get_by_role("button", name="Se connecter", exact=True).last.click()

    async def wait_connected(self) -> None:
        await expect(self.page.locator(".connection")).to_have_attribute("data-state", "ready")

    async def search(self, *, name: str = "", profession: str = "", city: str = "") -> None:
        page = self.page
        await page.get_by_role("button", name="Rechercher un confrère").click()
        await page.get_by_role("searchbox", name="Nom", exact=True).fill(name)
        await page.get_by_role("searchbox", name="Profession").fill(profession)
        await page.get_by_role("searchbox", name="Ville").fill(city)
        await page.get_by_role("button", name="Rechercher", exact=True).click()
        await expect(page.locator(".search-status")).to_have_text(re.compile(r"résultat|Aucun"))

    async def write_to(self, query: str, display_name: str) -> None:
        """Find a colleague in the directory by name and open a conversation with them."""
        await self.search(name=query)
        await self.page.get_by_role("button", name=f"Écrire à {display_name}").click()

    async def open_conversation(self, username: str) -> None:
        await self.page.locator(f'button.conversation-item[data-peer="{username}"]').click()
        await expect(self.page.locator("#composer-input")).to_be_visible()

    async def send(self, text: str) -> None:
        await self.page.locator("#composer-input").fill(text)
        await self.page.get_by_role("button", name="Envoyer").click()

    async def create_group(
        self, name: str, members: list[tuple[str, str]], *, screenshot: str | None = None
    ) -> str:
        """Create a care-team group, each member found in the directory by (search text, display name).

        Returns the group's id, once its conversation is open.
        """
        page = self.page
        await page.get_by_role("button", name="Nouveau groupe").click()
        await page.get_by_label("Nom du groupe").fill(name)
        for query, display_name in members:
            await page.get_by_label("Rechercher un confrère").fill(query)
            await page.get_by_role("button", name="Chercher", exact=True).click()
            await page.get_by_role("button", name=f"Ajouter {display_name}", exact=True).click()
            await expect(page.locator("ul.chosen li.chip", has_text=display_name)).to_have_count(1)
        if screenshot:
            await self.screenshot(screenshot)
        await page.get_by_role("button", name="Créer le groupe").click()
        await expect(page.locator(".conversation-header h2")).to_have_text(name)
        group_id = await page.locator("button.conversation-item.current").get_attribute("data-peer")
        assert group_id is not None and group_id.startswith("G")
        return group_id

    async def open_group(self, group_id: str) -> None:
        await self.page.locator(f'button.conversation-item[data-peer="{group_id}"]').click()
        await expect(self.page.locator("#composer-input")).to_be_visible()

    def system_lines(self) -> Locator:
        return self.page.locator("li.system-line")

    def messages(self, direction: str = "") -> Locator:
        return self.page.locator(f"li.message{'.' + direction if direction else ''}")

    async def screenshot(self, name: str, *, full_page: bool = False) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(
            path=SCREENSHOTS / f"{name}.png", animations="disabled", caret="initial", full_page=full_page
        )

    def assert_no_page_errors(self) -> None:
        assert self.errors == [], self.errors
