"""The bench report's own arithmetic: node histograms over a window, latency against offered rate."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any

import pytest

from loadtests import bench, node_metrics, procstat, report
from server.metrics import Metrics


def rendered(metrics: Metrics) -> str:
    text = metrics.render()
    return text.decode() if isinstance(text, bytes) else text


def test_quantiles_interpolate_within_a_bucket_like_prometheus() -> None:
    buckets = {0.01: 0.0, 0.025: 50.0, 0.05: 100.0, math.inf: 100.0}
    assert node_metrics.quantile(buckets, 0.5) == pytest.approx(0.025)
    assert node_metrics.quantile(buckets, 0.99) == pytest.approx(0.025 + 0.025 * 49 / 50)
    assert node_metrics.quantile({0.01: 0.0, math.inf: 0.0}, 0.5) is None


def test_observations_past_the_last_bucket_report_its_bound() -> None:
    assert node_metrics.quantile({0.01: 1.0, 10.0: 1.0, math.inf: 4.0}, 0.99) == 10.0


def test_a_window_counts_only_what_the_nodes_observed_in_it() -> None:
    first, second = Metrics(), Metrics()
    first.accept_seconds.observe(0.004)  # before the window: not counted
    before = node_metrics.parse(rendered(first))
    for _ in range(98):
        first.accept_seconds.observe(0.002)
    second.accept_seconds.observe(0.3)
    second.accept_seconds.observe(0.3)
    second.delivery_latency.observe(0.02)
    after = node_metrics.parse(rendered(first))
    for name, buckets in node_metrics.parse(rendered(second)).items():  # two nodes, added up
        for bound, count in buckets.items():
            after[name][bound] += count

    measured = node_metrics.window(before, after)

    assert measured["accept"]["observations"] == 100
    assert 1.0 <= measured["accept"]["p50_ms"] <= 2.5  # the 0.001-0.0025 bucket
    assert measured["accept"]["p99_ms"] == pytest.approx(375.0)  # halfway into the slow batches' bucket
    assert measured["push"] == {
        "observations": 1,
        "p50_ms": pytest.approx(17.5),
        "p99_ms": pytest.approx(24.85),
    }


def row(
    phase: str,
    p99: float,
    *,
    errors: int = 0,
    cpu_pressure: float | None = None,
    generator_runnable: float | None = None,
) -> dict[str, Any]:
    return {
        "phase": phase,
        "deliveries_per_s": 100.0,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "errors": errors,
        "cpu_pressure": cpu_pressure,
        "load_generator_runnable": generator_runnable,
    }


def test_the_rate_sweep_names_the_highest_rate_each_system_kept_in_bound() -> None:
    settings = {"rate": 2000.0}
    metrics = {
        "lien": {
            "pairs": row("pairs", 9.0),
            "rate:250": row("rate:250", 12.0),
            "rate:500": row("rate:500", 40.0, errors=1),
            "rate:1000": row("rate:1000", 48.0),
            "rate": row("rate", 700.0, cpu_pressure=0.964, generator_runnable=0.99),
        },
        "baseline": {name: row(name, 3.0) for name in ("rate:250", "rate:500", "rate:1000", "rate")},
    }

    lines = report.rate_sweep_markdown(metrics, settings)

    offered = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert offered == ["250", "500", "1,000", "2,000"]
    assert lines[-2].startswith(
        "Highest offered rate of this run with p99 ≤ 50 ms and no error: Lien 1,000/s, baseline 2,000/s."
    )
    at_2000 = next(line for line in lines if line.startswith("| 2,000 "))
    assert at_2000.split("|")[4].strip() == "700.00 †"  # the load generator was saturated
    assert at_2000.split("|")[5].strip() == "96 %"  # Lien's CPU pressure
    assert at_2000.split("|")[8].strip() == "3.00"  # not saturated: no mark
    assert at_2000.split("|")[9].strip() == "-"  # the baseline's phase measured none
    assert report.rate_sweep_markdown({"lien": {"rate": row("rate", 1.0)}}, settings) == []


def test_a_load_generator_is_saturated_when_its_processes_never_idle() -> None:
    one = {"cpu_share": 0.70, "waited_share": 0.29}
    two = {"cpu_share": 0.81, "waited_share": 0.12}  # two processes: CPU summed, wait their mean
    assert report.generator_runnable(one, 1) == pytest.approx(0.99)
    assert report.generator_runnable(two, 2) == pytest.approx(0.525)
    assert report.generator_runnable({"cpu_share": 0.5}, 1) is None  # a report from before waits were read

    phase: dict[str, Any] = {
        "phase": "rate",
        "seconds": 20.0,
        "deliveries": 40000,
        "deliveries_per_s": 2000.0,
        "messages_per_s": 2000.0,
        "latency_ms": {"p50": 60.0, "p95": 140.0, "p99": 190.0, "max": 280.0},
        "errors": {},
        "processes": {"load generator": one, "lien-1": {"cpu_s": 7.0}, "lien-2": {"cpu_s": 7.0}},
    }
    saturated = report.phase_metrics("lien", phase)
    verdict = report._verdict("rate", saturated, None)
    assert verdict.startswith("p99 ≤ 50 ms at the offered rate: **not met** (p99 190.0 ms")
    assert "The load generator was saturated (each process running or waiting for a core 99 % " in verdict

    phase["processes"]["load generator"] = two
    split = report.rows({"lien": {"phases": [phase], "driver_processes": 2}})[0]
    assert split["load_generator_runnable"] == pytest.approx(0.525)
    assert "saturated" not in report._verdict("rate", split, None)


def test_the_capacity_report_says_whether_clients_offered_compression() -> None:
    context = {
        "started": "2026-12-07 07:00 UTC",
        "command": "make bench-capacity",
        "commit": "abc1234",
        "elapsed_s": 300,
        "cores": 2,
        "cpu": "AMD EPYC",
        "nofile": 20000,
        "load_before": [0.1, 0.2, 0.3],
    }
    result: dict[str, Any] = {
        "devices": 19000,
        "client_processes": 2,
        "authenticated": 19000,
        "failures": 0,
        "failure_reasons": {},
        "compression_offered": "deflate",
        "compressed_sockets": 0,
        "connections_held": 19000,
        "rss_before_mib": 90.0,
        "rss_after_mib": 530.0,
        "peak_rss_mib": 531.0,
        "kib_per_connection": 23.7,
        "connect_s": 60.0,
        "connect_cpu_s": 50.0,
        "idle_s": 30.0,
        "idle_cpu_share": 0.1,
    }
    page = report.capacity_markdown(context, result)
    assert "| permessage-deflate: offered (as browsers do); sockets compressed | 0 |" in page
    assert "**met**" in page

    result["compression_offered"], result["compressed_sockets"] = "none", 0
    assert "permessage-deflate: not offered" in report.capacity_markdown(context, result)
    del result["compression_offered"], result["compressed_sockets"]  # a report from before the option
    assert "permessage-deflate" not in report.capacity_markdown(context, result)


def test_cpu_pressure_is_read_from_the_some_line() -> None:
    text = (
        "some avg10=1.00 avg60=2.00 avg300=3.00 total=2500000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n"
    )
    assert procstat.parse_pressure(text) == pytest.approx(2.5)
    assert procstat.parse_pressure("full avg10=0.00 total=7\n") is None


def test_a_window_shares_cpu_pressure_and_steal_over_its_seconds() -> None:
    before = procstat.Machine(pressure_s=10.0, steal_s=1.0, at=100.0)
    after = procstat.Machine(pressure_s=13.0, steal_s=1.0 + 0.4 * (os.cpu_count() or 1), at=104.0)
    assert procstat.machine_window(before, after) == {"cpu_pressure_share": 0.75, "steal_share": 0.1}
    unknown = procstat.Machine(pressure_s=None, steal_s=1.0, at=104.0)
    assert procstat.machine_window(before, unknown) == {"steal_share": 0.0}


def test_a_process_window_has_how_long_it_waited_for_a_core() -> None:
    """One more spinning process than cores, for a second: together they wait about a second."""
    assert procstat.parse_schedstat("2321798357 1627279087 17914\n") == pytest.approx(1.627279087)
    assert procstat.parse_schedstat("") is None
    spin = (
        "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass\n"
        "print(open('/proc/self/schedstat').read())"
    )
    spinners = [
        subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
        for _ in range((os.cpu_count() or 1) + 1)
    ]
    waited = [procstat.parse_schedstat(spinner.communicate(timeout=30)[0]) for spinner in spinners]
    assert all(value is not None for value in waited)
    assert sum(value or 0.0 for value in waited) > 0.3

    before = procstat.sample(os.getpid())
    after = procstat.sample(os.getpid())
    assert before is not None and before.waited_s is not None
    window = procstat.window(before, after, 1.0)
    assert window["waited_share"] >= 0.0 and window["cpu_s"] >= 0.0
    assert procstat.window(before, None, 1.0) == {"gone": True}
    machine = procstat.machine()
    assert machine.pressure_s is None or machine.pressure_s > 0


def test_a_process_window_counts_its_read_and_write_system_calls() -> None:
    """A child makes 500 writes and 500 reads between two handshakes: its window counts those 1,000."""
    assert procstat.parse_io("rchar: 1\nwchar: 2\nsyscr: 30\nsyscw: 12\nread_bytes: 0\n") == 42
    assert procstat.parse_io("rchar: 1\n") is None
    calls = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "for _ in range(500):\n    os.write(w, b'x'); os.read(r, 1)\n"
        "print('done', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", calls], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "ready\n"
        before = procstat.sample(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        after = procstat.sample(child.pid)
        assert before is not None and after is not None
        window = procstat.window(before, after, 1.0)
        assert 1000 <= window["syscalls"] < 1050  # and the handshake's own few reads and writes
        unreadable = procstat.Sample(cpu_s=0.0, rss_kib=0, peak_rss_kib=0, sockets=0, syscalls=None)
        assert "syscalls" not in procstat.window(unreadable, after, 1.0)
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait(timeout=10)


def test_system_calls_are_reported_per_delivery_for_every_process_that_counted_them() -> None:
    phase: dict[str, Any] = {
        "phase": "rate",
        "seconds": 10.0,
        "deliveries": 2000,
        "deliveries_per_s": 200.0,
        "messages_per_s": 200.0,
        "latency_ms": {"p50": 6.0, "p95": 9.0, "p99": 12.0, "max": 20.0},
        "errors": {},
        "processes": {
            "load generator": {"cpu_s": 3.0, "syscalls": 10000},
            "lien-1": {"cpu_s": 2.0, "syscalls": 4000},
            "lien-2": {"cpu_s": 2.0, "syscalls": 5000},
            "redis": {"cpu_s": 0.1, "syscalls": 600},
            "postgresql": {"cpu_s": 1.0},  # its backends could not all be read
        },
    }
    row = report.phase_metrics("lien", phase)
    assert row["node_syscalls_per_delivery"] == 4.5
    assert row["redis_syscalls_per_delivery"] == 0.3
    assert row["load_generator_syscalls_per_delivery"] == 5.0
    assert "pg_syscalls_per_delivery" not in row
    phase["processes"]["lien-2"] = {"cpu_s": 2.0}  # one node without a count: no figure for the nodes
    assert "node_syscalls_per_delivery" not in report.phase_metrics("lien", phase)


def test_the_bench_databases_backends_add_up_from_zero_for_one_that_started_in_the_window() -> None:
    def backend(cpu_s: float, syscalls: int | None) -> procstat.Sample:
        return procstat.Sample(cpu_s=cpu_s, rss_kib=0, peak_rss_kib=0, sockets=0, syscalls=syscalls)

    before = {1: backend(1.0, 100), 2: backend(2.0, 200)}
    after = {1: backend(1.5, 160), 2: backend(2.0, 200), 3: backend(0.25, 40)}
    window = bench._backends_window(before, after, 5.0)
    assert window == {"cpu_s": 0.75, "cpu_share": 0.15, "backends": 3, "syscalls": 100}
    after[3] = backend(0.25, None)
    assert "syscalls" not in bench._backends_window(before, after, 5.0)
