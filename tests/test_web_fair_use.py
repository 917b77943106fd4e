"""Fair use in the browser: a sender over its per-account rate gets `rate-limited`, waits, retries.

Nothing typed is lost and nothing arrives twice or out of order (docs/protocol.md §6.10).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.databases import sqlite_url
from tests.live import LiveNode
from tests.web import Person

pytestmark = [pytest.mark.browser, pytest.mark.live]

MESSAGES = [f"Résultat n° {n} : potassium à contrôler" for n in range(1, 9)]


@pytest.fixture
def slow_node(tmp_path: Path) -> Iterator[LiveNode]:
    """A node allowing one message per second per account, two at once."""
    started = LiveNode(
        database_url=sqlite_url(tmp_path),
        data_dir=tmp_path,
        name="web-fair-use",
        extra_env={"LIEN_MESSAGE_RATE": "1", "LIEN_MESSAGE_BURST": "2"},
    ).start()
    yield started
    started.stop()


async def test_a_burst_over_the_limit_is_queued_and_retried_until_all_arrive_in_order(
    browser: Browser, slow_node: LiveNode
) -> None:
    doctor = await Person.open(browser, slow_node.url)
    await doctor.sign_up("dr.martin", "Dr Hélène Martin", profession="Médecin généraliste", city="Lyon")
    lab = await Person.open(browser, slow_node.url)
    await lab.sign_up("labo.durand", "Laboratoire Durand", profession="Biologiste", city="Lyon")
    await lab.write_to("helene", "Dr Hélène Martin")

    for text in MESSAGES:
        await lab.send(text)

    await doctor.open_conversation("labo.durand")
    incoming = doctor.messages("incoming").locator(".text")
    await expect(incoming).to_have_text(MESSAGES, timeout=30_000)
    await expect(lab.messages("outgoing")).to_have_count(len(MESSAGES))
    for index in range(len(MESSAGES)):
        await expect(lab.messages("outgoing").nth(index)).to_have_attribute(
            "data-status", "read", timeout=30_000
        )
    # Nothing went wrong for the user: no alert, no page error.
    await expect(lab.page.get_by_role("alert")).to_have_count(0)
    doctor.assert_no_page_errors()
    lab.assert_no_page_errors()
