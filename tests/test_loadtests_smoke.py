"""A few seconds of every load-test scenario against a live node and a real Redis: correctness only.

The Locust scenarios (loadtests/scenarios/) and the asyncio driver's phases
(loadtests/driver.py, against Lien and against the baseline relay) must
deliver messages and report no error. No timing is asserted: the figures are
``make bench``'s business.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import node_metrics, services
from tests.databases import sqlite_url
from tests.live import LiveNode
from tests.redis_server import RedisProcess

pytestmark = [pytest.mark.live, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SCENARIO_DELIVERIES = [
    "lab alert: alert to the prescriber",
    "lab alert: read receipt to the biologist",
    "lab alert: answer to the biologist",
    "care team: group message",
    "reconnect storm: backlog message",
    "reconnect storm: backlog drained",
    "offline backlog: waiting message",
    "offline backlog: drained",
]


def test_locust_scenarios(tmp_path: Path, redis_url: str, live_nodes: list[LiveNode]) -> None:
    node = LiveNode(
        database_url=sqlite_url(tmp_path), data_dir=tmp_path, redis_url=redis_url, extra_env=services.UNPACED
    )
    live_nodes.append(node.start())
    prefix = tmp_path / "locust"
    argv = [
        sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"),
        "--headless", "--users", "4", "--spawn-rate", "4", "--run-time", "12s",
        "--host", node.url, "--csv", str(prefix), "--only-summary", "--exit-code-on-error", "0",
        "--team-size", "8-8", "--backlog-size", "30", "--storm-period", "3", "--storm-burst", "5",
        "--expect-timeout", "10", "--stop-timeout", "5",
        "LabAlert", "CareTeam", "ReconnectStorm", "OfflineBacklog",
    ]  # fmt: skip
    finished = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert finished.returncode == 0, finished.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as stats_file:
        stats = {row["Name"]: row for row in csv.DictReader(stats_file)}
    failures = {name: row["Failure Count"] for name, row in stats.items() if row["Failure Count"] != "0"}
    assert not failures, (failures, finished.stderr[-3000:])
    for name in SCENARIO_DELIVERIES:
        assert name in stats and int(stats[name]["Request Count"]) > 0, (name, sorted(stats))
    with open(f"{prefix}_exceptions.csv") as exceptions_file:
        assert list(csv.DictReader(exceptions_file)) == []


def test_driver_phases_on_lien_and_baseline(
    tmp_path: Path, redis_process: RedisProcess, live_nodes: list[LiveNode]
) -> None:
    node = LiveNode(
        database_url=sqlite_url(tmp_path),
        data_dir=tmp_path,
        redis_url=redis_process.url,
        extra_env=services.UNPACED,
    )
    live_nodes.append(node.start())
    relay, relay_url = services.start_baseline_node("baseline", tmp_path, redis_url=redis_process.url)
    try:
        for target, url in (("lien", node.url), ("baseline", relay_url)):
            out = tmp_path / f"{target}.json"
            histograms_before = node_metrics.scrape([node.url])
            argv = [
                sys.executable, "-m", "loadtests.driver", "--target", target, "--url", url,
                "--devices", "20", "--group-size", "10", "--phases", "pairs,rate,groups,receipts:50",
                "--rate", "100", "--warmup", "0.5", "--duration", "1", "--out", str(out),
            ]  # fmt: skip
            finished = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90)
            assert finished.returncode == 0, finished.stderr[-3000:]
            result = json.loads(out.read_text())
            assert result["setup_errors"] == {}, (target, result)
            *measured, with_receipts = result["phases"]
            if target == "baseline":
                assert with_receipts == {"phase": "receipts:50", "skipped": "the relay has no receipts"}
            else:
                measured.append(with_receipts)
                # A delivered and a read receipt for each message, recorded and back at the sender.
                assert with_receipts["receipts_returned"] > 0, with_receipts
            for phase in measured:
                assert phase["deliveries"] > 0, (target, phase)
                assert phase["errors"] == {}, (target, phase)
                assert phase["loop_lag_ms"]["p99"] is not None, (target, phase)  # the probe sampled
            if target == "lien":  # what make bench reads from the nodes for the same run
                in_nodes = node_metrics.window(histograms_before, node_metrics.scrape([node.url]))
                for stretch in ("accept", "push"):
                    assert in_nodes[stretch]["observations"] > 0, in_nodes
                    assert in_nodes[stretch]["p99_ms"] is not None, in_nodes
    finally:
        relay.stop()
