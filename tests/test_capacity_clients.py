"""loadtests.idle_clients (the client side of ``make bench-capacity``) against a live node.

The capacity report says why devices failed to connect; a socket the node
refused must be counted with its reason, not silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import report
from tests.databases import sqlite_url
from tests.live import LiveNode

pytestmark = pytest.mark.live

REPO = Path(__file__).resolve().parent.parent


def test_refused_sockets_are_counted_with_their_reason(tmp_path: Path, live_nodes: list[LiveNode]) -> None:
    node = LiveNode(database_url=sqlite_url(tmp_path), data_dir=tmp_path)
    live_nodes.append(node.start())
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("not-a-token\nnor-this-one\n")
    with subprocess.Popen(
        [sys.executable, "-m", "loadtests.idle_clients", "--url", node.url, "--tokens", str(tokens)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as client:
        try:
            assert client.stdout is not None
            line = client.stdout.readline().split(maxsplit=3)
        finally:
            client.terminate()
            client.wait(30)

    assert line[:3] == ["@@ready", "0", "2"]
    reasons = json.loads(line[3])
    assert sum(reasons.values()) == 2 and all(reasons), reasons
    result = {"failures": 2, "failure_reasons": reasons}
    assert (
        report._reasons(result) == " (" + ", ".join(f"{why}: {n}" for why, n in sorted(reasons.items())) + ")"
    )
    assert report._reasons({"failures": 0}) == ""
