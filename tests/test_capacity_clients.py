"""loadtests.idle_clients (the client side of ``make bench-capacity``) against a live node.

The capacity report says why devices failed to connect; a socket the node
refused must be counted with its reason, not silently.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loadtests import report
from tests.databases import sqlite_url
from tests.inprocess import register
from tests.live import LiveNode

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parent.parent


def ready_line(node: LiveNode, tokens: Path) -> list[str]:
    """The idle clients' ``@@ready`` line, split into its five fields; the clients are then stopped."""
    with subprocess.Popen(
        [sys.executable, "-m", "loadtests.idle_clients", "--url", node.url, "--tokens", str(tokens)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as client:
        try:
            assert client.stdout is not None
            return client.stdout.readline().strip().split(maxsplit=4)
        finally:
            client.terminate()
            client.wait(30)


def test_refused_sockets_are_counted_with_their_reason(tmp_path: Path, live_nodes: list[LiveNode]) -> None:
    node = LiveNode(database_url=sqlite_url(tmp_path), data_dir=tmp_path)
    live_nodes.append(node.start())
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("not-a-token\nnor-this-one\n")

    line = ready_line(node, tokens)

    assert line[:4] == ["@@ready", "0", "2", "0"]
    reasons = json.loads(line[4])
    assert sum(reasons.values()) == 2 and all(reasons), reasons
    result = {"failures": 2, "failure_reasons": reasons}
    assert (
        report._reasons(result) == " (" + ", ".join(f"{why}: {n}" for why, n in sorted(reasons.items())) + ")"
    )
    assert report._reasons({"failures": 0}) == ""


def test_a_served_node_declines_compression_offered_by_clients(
    tmp_path: Path, live_nodes: list[LiveNode]
) -> None:
    """``lien serve`` itself (not only the app): the idle clients offer permessage-deflate, as browsers do."""
    node = LiveNode(database_url=sqlite_url(tmp_path), data_dir=tmp_path)
    live_nodes.append(node.start())

    async def sign_up() -> list[str]:
        async with httpx.AsyncClient(base_url=node.url) as http:
            return [(await register(http, name))[0].token for name in ("alice", "bob")]

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(asyncio.run(sign_up())))

    assert ready_line(node, tokens) == ["@@ready", "2", "0", "0", "{}"]
