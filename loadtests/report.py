"""The benchmark report: CSV rows and the Markdown page of ``make bench`` (and of the capacity run)."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

PHASE_TITLES = {
    "pairs": "One to one, closed loop (max throughput)",
    "rate": "One to one, fixed offered rate of {rate} messages/s",
    "receipts": "One to one with a delivered and a read receipt for each message, {rate} messages/s offered",
    "groups": "Care-team groups, closed loop (max throughput)",
}
FIXED_RATE_KINDS = ("rate", "receipts")


def offered_rate(phase: str, settings: dict[str, Any]) -> float | None:
    """Messages per second a fixed-rate phase (``rate``, ``rate:500``, ``receipts:250``) offers; else None."""
    kind, _, value = phase.partition(":")
    return float(value or settings.get("rate", 0)) if kind in FIXED_RATE_KINDS else None


def phase_title(phase: str, settings: dict[str, Any]) -> str:
    kind, _, _ = phase.partition(":")
    return PHASE_TITLES.get(kind, phase).format(rate=f"{offered_rate(phase, settings) or 0:,.0f}")


TARGETS = {
    "pairs": ("ratio", 0.35, 5000.0),
    "groups": ("ratio", 0.65, 30000.0),
    "rate": ("p99", 50.0, None),
}


GENERATOR_SATURATED = 0.95
"""Share of the window in which a load generator process ran or waited for a core, from which it is
saturated: its event loop never idles, so each delivery also waits in the generator's own queue (to
be sent, and to be read and verified) and the latency measured is no longer the servers' alone."""


def _nodes(kind: str, processes: dict[str, Any]) -> list[str]:
    return sorted(name for name in processes if name.startswith(f"{kind}-"))


def _cpu(processes: dict[str, Any], name: str) -> float:
    return float(processes.get(name, {}).get("cpu_s", 0.0))


def generator_runnable(generator: dict[str, Any], processes: int) -> float | None:
    """Share of the window in which each load generator process ran or waited for a core (their mean).

    ``generator`` holds their CPU share summed over ``processes`` processes and their mean wait.
    """
    cpu, waited = generator.get("cpu_share"), generator.get("waited_share")
    if cpu is None or waited is None:
        return None
    return round(float(cpu) / max(1, processes) + float(waited), 3)


def phase_metrics(kind: str, phase: dict[str, Any], generator_processes: int = 1) -> dict[str, Any]:
    processes = phase.get("processes", {})
    nodes = _nodes(kind, processes)
    deliveries = max(1, int(phase["deliveries"]))
    generator = processes.get("load generator", {})
    node_cpu = sum(_cpu(processes, name) for name in nodes)
    server_cpu = node_cpu + _cpu(processes, "redis") + _cpu(processes, "postgresql")
    row: dict[str, Any] = {
        "system": kind,
        "phase": phase["phase"],
        "seconds": phase["seconds"],
        "deliveries": phase["deliveries"],
        "deliveries_per_s": phase["deliveries_per_s"],
        "messages_per_s": phase["messages_per_s"],
        "receipts_per_s": phase.get("receipts_per_s", 0.0),
        "p50_ms": phase["latency_ms"]["p50"],
        "p95_ms": phase["latency_ms"]["p95"],
        "p99_ms": phase["latency_ms"]["p99"],
        "max_ms": phase["latency_ms"]["max"],
        "errors": sum(phase["errors"].values()),
        "undelivered_after_drain": phase.get("undelivered_after_drain", 0),
        "error_codes": " ".join(f"{code}={count}" for code, count in sorted(phase["errors"].items())),
        "node_cpu_us_per_delivery": round(node_cpu / deliveries * 1e6, 1),
        "server_cpu_us_per_delivery": round(server_cpu / deliveries * 1e6, 1),
        "load_generator_cpu": generator.get("cpu_share"),
        "load_generator_lag_p99_ms": phase.get("loop_lag_ms", {}).get("p99"),
        "redis_cpu": processes.get("redis", {}).get("cpu_share"),
        "postgresql_cpu": processes.get("postgresql", {}).get("cpu_share"),
        "cpu_pressure": phase.get("machine", {}).get("cpu_pressure_share"),
        "machine_steal": phase.get("machine", {}).get("steal_share"),
        "load_generator_waited": generator.get("waited_share"),
        "load_generator_runnable": generator_runnable(generator, generator_processes),
    }
    postgres = processes.get("postgresql", {})
    if "xact_commit" in postgres:
        row["pg_transactions_per_delivery"] = round(postgres["xact_commit"] / deliveries, 2)
        changed = sum(postgres.get(key, 0) for key in ("tup_inserted", "tup_updated", "tup_deleted"))
        row["pg_rows_written_per_delivery"] = round(changed / deliveries, 2)
    for key, found in (
        ("node_syscalls_per_delivery", [processes[name].get("syscalls") for name in nodes]),
        ("redis_syscalls_per_delivery", [processes.get("redis", {}).get("syscalls")]),
        ("pg_syscalls_per_delivery", [postgres.get("syscalls")]),
        ("load_generator_syscalls_per_delivery", [generator.get("syscalls")]),
    ):
        if found and all(isinstance(count, int) for count in found):
            row[key] = round(sum(found) / deliveries, 2)
    for stretch, measured in phase.get("node_latency", {}).items():
        row[f"node_{stretch}_p50_ms"] = measured["p50_ms"]
        row[f"node_{stretch}_p99_ms"] = measured["p99_ms"]
    for index, name in enumerate(nodes, 1):
        row[f"node{index}_cpu"] = processes[name].get("cpu_share")
        row[f"node{index}_waited"] = processes[name].get("waited_share")
        row[f"node{index}_rss_mib"] = processes[name].get("rss_mib")
        row[f"node{index}_peak_rss_mib"] = processes[name].get("peak_rss_mib")
        row[f"node{index}_sockets"] = processes[name].get("sockets")
    return row


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for kind, result in results.items():
        for phase in result["phases"]:
            if "skipped" not in phase:
                found.append(phase_metrics(kind, phase, result.get("driver_processes", 1)))
    keys: list[str] = []
    for row in found:
        keys.extend(key for key in row if key not in keys)
    return [{key: row.get(key, "") for key in keys} for row in found]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _share(value: Any) -> str:
    return "-" if value is None or value == "" else f"{float(value) * 100:.0f} %"


def _saturated(row: dict[str, Any] | None) -> bool:
    """Whether the load generator was saturated in this phase (:data:`GENERATOR_SATURATED`)."""
    runnable = row.get("load_generator_runnable") if row else None
    return isinstance(runnable, (int, float)) and runnable >= GENERATOR_SATURATED


def _verdict(phase: str, lien: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    kind, bound, absolute = TARGETS[phase]
    if kind == "p99":
        p99 = lien["p99_ms"]
        delivered = lien["deliveries_per_s"]
        met = p99 is not None and p99 <= bound and lien["errors"] == 0
        text = (
            f"p99 ≤ {bound:.0f} ms at the offered rate: **{'met' if met else 'not met'}** "
            f"(p99 {_fmt(p99)} ms, {_fmt(delivered)} deliveries/s delivered)"
        )
        if _saturated(lien):
            text += (
                f". The load generator was saturated (each process running or waiting for a core "
                f"{_share(lien['load_generator_runnable'])} of the window): this latency includes its own "
                "queue; the rows “in the nodes” are the servers' own share"
            )
        return text
    ratio = None if not baseline else lien["deliveries_per_s"] / max(1e-9, baseline["deliveries_per_s"])
    met = ratio is not None and ratio >= bound
    text = f"≥ {bound:.2f} x baseline: **{'met' if met else 'not met'}** (ratio {_fmt(ratio, 2)})"
    if absolute:
        reached = lien["deliveries_per_s"] >= absolute
        text += f"; ≈ {absolute:,.0f} deliveries/s: **{'met' if reached else 'not met'}**"
    return text


ROWS: list[tuple[str, str, int, bool, bool]] = [
    ("deliveries / s", "deliveries_per_s", 1, False, True),
    ("messages sent / s", "messages_per_s", 1, False, True),
    ("receipts back at the senders / s", "receipts_per_s", 1, False, False),
    ("latency p50 (ms)", "p50_ms", 2, False, True),
    ("latency p95 (ms)", "p95_ms", 2, False, True),
    ("latency p99 (ms)", "p99_ms", 2, False, True),
    ("latency max (ms)", "max_ms", 2, False, False),
    *(
        (f"in the nodes: {what}, {point} (ms)", f"node_{stretch}_{point}_ms", 2, False, False)
        for stretch, what in (
            ("accept", "send's arrival → `accepted`"),
            ("push", "acceptance → push on the recipient's socket"),
        )
        for point in ("p50", "p99")
    ),
    ("errors", "errors", 1, False, False),
    ("still undelivered 30 s after the window", "undelivered_after_drain", 0, False, False),
    ("node 1 CPU", "node1_cpu", 1, True, False),
    ("node 2 CPU", "node2_cpu", 1, True, False),
    ("PostgreSQL CPU (bench database's backends)", "postgresql_cpu", 1, True, False),
    ("Redis CPU", "redis_cpu", 1, True, False),
    ("load generator CPU", "load_generator_cpu", 1, True, False),
    (
        "load generator's event loop, p99 lateness of a 5 ms timer (ms)",
        "load_generator_lag_p99_ms",
        2,
        False,
        False,
    ),
    (
        "node 1 ready to run but waiting for a core (main thread, share of the window)",
        "node1_waited",
        1,
        True,
        False,
    ),
    (
        "node 2 ready to run but waiting for a core (main thread, share of the window)",
        "node2_waited",
        1,
        True,
        False,
    ),
    (
        "load generator ready to run but waiting for a core (share of the window)",
        "load_generator_waited",
        1,
        True,
        False,
    ),
    (
        "load generator running or waiting for a core (each process, share of the window)",
        "load_generator_runnable",
        1,
        True,
        False,
    ),
    (
        "machine: share of the window in which some task waited for a core (CPU pressure)",
        "cpu_pressure",
        1,
        True,
        False,
    ),
    ("machine: its cores' time the hypervisor gave to other guests", "machine_steal", 1, True, False),
    ("PostgreSQL transactions committed per delivery", "pg_transactions_per_delivery", 2, False, False),
    (
        "PostgreSQL rows inserted, updated or deleted per delivery",
        "pg_rows_written_per_delivery",
        2,
        False,
        False,
    ),
    ("read and write system calls per delivery, nodes", "node_syscalls_per_delivery", 2, False, True),
    ("read and write system calls per delivery, Redis", "redis_syscalls_per_delivery", 2, False, True),
    (
        "read and write system calls per delivery, PostgreSQL (bench database's backends)",
        "pg_syscalls_per_delivery",
        2,
        False,
        False,
    ),
    (
        "read and write system calls per delivery, load generator",
        "load_generator_syscalls_per_delivery",
        2,
        False,
        True,
    ),
    ("server CPU per delivery, nodes only (µs)", "node_cpu_us_per_delivery", 1, False, True),
    (
        "server CPU per delivery, nodes + Redis + PostgreSQL (µs)",
        "server_cpu_us_per_delivery",
        1,
        False,
        True,
    ),
    ("node 1 RSS at the window's end (MiB)", "node1_rss_mib", 1, False, False),
    ("node 2 RSS at the window's end (MiB)", "node2_rss_mib", 1, False, False),
    ("node 1 peak RSS since it started (MiB)", "node1_peak_rss_mib", 1, False, False),
    ("node 2 peak RSS since it started (MiB)", "node2_peak_rss_mib", 1, False, False),
    ("node 1 sockets held", "node1_sockets", 0, False, False),
    ("node 2 sockets held", "node2_sockets", 0, False, False),
]
"""(label, metric, digits, shown as a CPU share, with a Lien / baseline ratio)"""


def _table_row(
    pair: tuple[dict[str, Any] | None, dict[str, Any] | None],
    label: str,
    key: str,
    digits: int,
    share: bool,
    ratio: bool,
) -> str:
    values = [row.get(key) if row else None for row in pair]
    shown = [_share(v) if share else _fmt(v, digits) for v in values]
    quotient = "-"
    if ratio and all(isinstance(v, (int, float)) and v for v in values):
        quotient = f"{values[0] / values[1]:.2f}"  # type: ignore[operator]
    return f"| {label} | {shown[0]} | {shown[1]} | {quotient} |"


def markdown(context: dict[str, Any], results: dict[str, Any]) -> str:
    settings = context["settings"]
    lines = [
        f"# Lien benchmark, {context['started']}",
        "",
        f"Command: `{context['command']}` (commit `{context['commit']}`), {context['elapsed_s']} s in all.",
        "",
        f"Machine: {context['cores']} cores ({context['cpu']}), shared by the load generator, the two "
        "server nodes, Redis and PostgreSQL. "
        f"Load average before the run: {' / '.join(f'{v:.2f}' for v in context['load_before'])}; "
        f"after: {' / '.join(f'{v:.2f}' for v in context['load_after'])} (1 / 5 / 15 min).",
        "",
        "Set-up: Lien = two `lien serve` nodes on one fresh PostgreSQL database and one Redis; "
        + (
            "baseline = two bare relay processes (`loadtests/baseline_relay.py`: Starlette + Redis "
            "pub/sub, no auth, no storage, no crypto) on the same Redis. Both are driven, one after the "
            "other, by the same asyncio "
            if "baseline" in results
            else "the baseline relay was not measured in this run (`--no-baseline`). Lien is driven by "
            "the asyncio "
        )
        + f"driver (`loadtests/driver.py`, {_processes(settings.get('driver_processes', 1))}, uvloop; its "
        "garbage collector, like the servers', set by `server/collector.py`) with "
        "these settings: "
        f"{settings['devices']} devices alternating between the two nodes, "
        f"window {settings['window']} messages per device (one to one), groups of {settings['group_size']} "
        f"with window {settings['group_window']} per member, fixed-rate phases at the rates in their titles "
        f"(offered evenly over the paired devices, whatever comes back); {settings['warmup']:.0f} s warm-up "
        f"then {settings['duration']:.0f} s "
        "measured per phase. The driver does the real end-to-end crypto for both systems (X3DH + Double "
        "Ratchet per copy, sender keys in groups, Ed25519 signature on every payload, every delivery "
        "decrypted and verified before it counts). Latency = sender's clock before encrypting → "
        "recipient's clock after decrypting and verifying.",
        "",
    ]
    metrics = {kind: {row["phase"]: row for row in rows({kind: result})} for kind, result in results.items()}
    for kind, result in results.items():
        for phase in result["phases"]:
            if "skipped" in phase:
                lines += [f"*{kind}, {phase['phase']}: skipped ({phase['skipped']}).*", ""]
    order = [row["phase"] for kind_rows in metrics.values() for row in kind_rows.values()]
    for phase in dict.fromkeys(order):
        title = phase_title(phase, settings)
        lien = metrics.get("lien", {}).get(phase)
        baseline = metrics.get("baseline", {}).get(phase)
        if lien is None and baseline is None:
            continue
        lines += [f"## {title}", ""]
        lines += ["| | Lien | baseline | Lien / baseline |", "| --- | ---: | ---: | ---: |"]

        for label, key, digits, share, ratio in ROWS:
            lines.append(_table_row((lien, baseline), label, key, digits, share, ratio))
        if lien is not None:
            codes = lien.get("error_codes") or "none"
            verdict = f"Target: {_verdict(phase, lien, baseline)}. " if phase in TARGETS else ""
            lines += ["", f"{verdict}Lien error codes: {codes}."]
        lines.append("")
    lines += rate_sweep_markdown(metrics, settings)
    profiles = results.get("lien", {}).get("profiles")
    if profiles:
        lines += [
            "## Where Lien's time goes",
            "",
            "py-spy sampled Lien's node 1 at 100 Hz during the phases below only (`--profile-phases`): "
            "the profiler takes about 8 % of a core, which on this machine would add to the latency "
            "the fixed-rate phases measure, so they ran without it. The nodes' own histograms above "
            "(arrival → `accepted`, acceptance → push) say where a delivery's latency goes in every "
            "phase.",
            "",
            *profile_markdown(profiles),
        ]
    lines += [
        "CPU is the share of one core over the measured window (100 % = one core), read from "
        "/proc/PID/stat; peak RSS is VmHWM, the process's high-water mark since it started (for Lien's "
        "nodes, reached in the set-up, when argon2id hashes the registrations' passwords in 64 MiB "
        "each, two at a time); sockets are the node's open socket descriptors (client "
        "WebSockets, PostgreSQL pool, Redis). PostgreSQL CPU sums the backends serving the bench "
        "database (other databases on the same server are not counted). Waiting for a core is "
        "the time a process's main thread was runnable while every core ran something else "
        "(/proc/PID/schedstat), CPU pressure the share of the window in which some task of the "
        "machine was in that state (/proc/pressure/cpu), and the hypervisor's share the time a "
        "virtual machine's cores were ready but the host ran other guests (steal, /proc/stat). "
        "System calls are a process's read-like and write-like calls, every thread (syscr + syscw, "
        "/proc/PID/io: sockets, pipes and files; not epoll), per delivery: unlike CPU time, they do "
        "not change with how fast the host is that hour.",
        "",
    ]
    return "\n".join(lines)


def rate_sweep_markdown(metrics: dict[str, dict[str, dict[str, Any]]], settings: dict[str, Any]) -> list[str]:
    """Every fixed-rate phase of both systems in one table, and the highest rate each kept p99 in bound."""
    offered = {
        phase: rate
        for rows_of in metrics.values()
        for phase in rows_of
        if phase.partition(":")[0] == "rate" and (rate := offered_rate(phase, settings)) is not None
    }
    if len(offered) < 2:
        return []
    bound = TARGETS["rate"][1]
    systems = ("lien", "baseline")
    lines = [
        "## Latency against offered rate (one to one)",
        "",
        "| offered / s | Lien delivered / s | Lien p50 (ms) | Lien p99 (ms) | CPU pressure, Lien "
        "| baseline delivered / s | baseline p50 (ms) | baseline p99 (ms) | CPU pressure, baseline |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    within: dict[str, float | None] = dict.fromkeys(systems)
    for phase, rate in sorted(offered.items(), key=lambda item: item[1]):
        cells = [f"{rate:,.0f}"]
        for system in systems:
            row = metrics.get(system, {}).get(phase)
            cells += [_fmt(row and row["deliveries_per_s"]), _fmt(row and row["p50_ms"], 2)]
            mark = " †" if _saturated(row) else ""
            cells += [_fmt(row and row["p99_ms"], 2) + mark, _share(row and row.get("cpu_pressure"))]
            if row and row["p99_ms"] is not None and row["p99_ms"] <= bound and row["errors"] == 0:
                within[system] = max(rate, within[system] or 0.0)
        lines.append("| " + " | ".join(cells) + " |")
    shown = {system: "none" if rate is None else f"{rate:,.0f}/s" for system, rate in within.items()}
    lines += [
        "",
        f"Highest offered rate of this run with p99 ≤ {bound:.0f} ms and no error: Lien {shown['lien']}, "
        f"baseline {shown['baseline']}. CPU pressure: the share of the window in which some task "
        "of the machine (the load generator's included) was ready to run and waited for a core "
        "(Linux PSI, /proc/pressure/cpu); the more of it, the more of a latency is queueing for the CPU. "
        f"†: the load generator was saturated (each process running or waiting for a core "
        f"{GENERATOR_SATURATED * 100:.0f} % of the window or more), so that p99 includes its own queue.",
        "",
    ]
    return lines


def _reasons(result: dict[str, Any]) -> str:
    """`` (why: count, …)`` from a capacity result's failure reasons; empty when none (or not recorded)."""
    reasons = result.get("failure_reasons") or {}
    if not reasons:
        return ""
    return " (" + ", ".join(f"{why}: {count:,}" for why, count in sorted(reasons.items())) + ")"


def _connect_cpu_row(result: dict[str, Any]) -> list[str]:
    """The node's CPU spent connecting every device (reports from before it was measured have none)."""
    if "connect_cpu_s" not in result:
        return []
    per_device_ms = result["connect_cpu_s"] * 1000 / max(1, result["authenticated"])
    return [
        "| node CPU to connect and authenticate them (s; ms per device) | "
        f"{result['connect_cpu_s']:,.1f}; {per_device_ms:,.2f} |"
    ]


def _compression_row(result: dict[str, Any]) -> list[str]:
    """Whether the clients offered permessage-deflate, and on how many sockets the node took it (if known)."""
    if "compression_offered" not in result:
        return []
    offered = "offered (as browsers do)" if result["compression_offered"] == "deflate" else "not offered"
    return [f"| permessage-deflate: {offered}; sockets compressed | {result['compressed_sockets']:,} |"]


def capacity_markdown(context: dict[str, Any], result: dict[str, Any]) -> str:
    met = (
        min(result["authenticated"], result["connections_held"]) >= 19000
        and result["kib_per_connection"] <= 30
    )
    lines = [
        f"# Lien connection capacity, {context['started']}",
        "",
        f"Command: `{context['command']}` (commit `{context['commit']}`), {context['elapsed_s']} s in all.",
        "",
        f"Machine: {context['cores']} cores ({context['cpu']}); open-file limit "
        f"{context['nofile']} per process. Load average before: "
        f"{' / '.join(f'{v:.2f}' for v in context['load_before'])}.",
        "",
        "One `lien serve` node on a fresh PostgreSQL database and Redis. Devices (real identity keys and "
        "signed prekeys) and their session tokens are written straight into the bench database through "
        "`server.storage` (argon2 hashing 19,000 passwords through the API would take most of an hour); "
        f"then {result['client_processes']} client processes open one WebSocket per device, send `auth` "
        "and wait for `ready`, and stay idle. Memory per connection = (node RSS with every device "
        "connected and idle - node RSS before the first connection) / sockets the node holds then.",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| devices asked for | {result['devices']:,} |",
        f"| authenticated and idle (`ready` received) | {result['authenticated']:,} |",
        f"| failures | {result['failures']:,}{_reasons(result)} |",
        *_compression_row(result),
        f"| client sockets the node still holds after {result['idle_s']:.0f} s idle | "
        f"{result['connections_held']:,} |",
        f"| node RSS before connections (MiB) | {result['rss_before_mib']:,.1f} |",
        f"| node RSS with all connected, idle (MiB) | {result['rss_after_mib']:,.1f} |",
        f"| node peak RSS (MiB) | {result['peak_rss_mib']:,.1f} |",
        f"| **memory per connection (KiB)** | **{result['kib_per_connection']:,.1f}** |",
        f"| time to connect and authenticate all (s) | {result['connect_s']:,.1f} |",
        *_connect_cpu_row(result),
        f"| node CPU while idle, {result['idle_s']:.0f} s (share of a core) "
        f"| {result['idle_cpu_share'] * 100:.1f} % |",
        "",
        "Target: 19,000 idle authenticated connections on one node with ≤ 30 KiB each: "
        f"**{'met' if met else 'not met'}**.",
        "",
    ]
    baseline = result.get("baseline")
    if baseline:
        lines += [
            "The same measurement, same run, for one baseline relay process (`loadtests/baseline_relay.py`, "
            "same uvicorn settings, a bare Starlette WebSocket with a Redis subscription per device): "
            f"{baseline['connections_held']:,} connections held ({baseline['failures']:,} failures"
            f"{_reasons(baseline)}), "
            f"RSS {baseline['rss_before_mib']:,.1f} → {baseline['rss_after_mib']:,.1f} MiB, "
            f"**{baseline['kib_per_connection']:,.1f} KiB per connection**, all connected in "
            f"{baseline['connect_s']:,.1f} s.",
            "",
        ]
    return "\n".join(lines)


def profile_summary(path: Path, top: int = 15) -> dict[str, Any]:
    """The hottest frames of a py-spy collapsed-stack file: own time and time including callees.

    Only the event loop thread counts (py-spy without ``--idle`` samples
    threads while they run); frames are ``function (file:line)``.
    """
    own: collections.Counter[str] = collections.Counter()
    including: collections.Counter[str] = collections.Counter()
    modules: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "Runner.run" not in stack:
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            including[frame] += samples
        for frame in reversed(frames):
            where = frame.rpartition("(")[2]
            if where.startswith(("server/", "lien/")) and not where.startswith(
                ("server/cli", "server/__main__")
            ):
                modules[where.split(":")[0]] += samples
                break
        else:
            modules["(no Lien frame: uvicorn, websockets, asyncio)"] += samples
    share = max(1, total)
    return {
        "samples": total,
        "own": [(frame, round(100 * n / share, 1)) for frame, n in own.most_common(top)],
        "including": [
            (frame, round(100 * n / share, 1))
            for frame, n in including.most_common(top * 4)
            if ("(server/" in frame or "(lien/" in frame)
            and "(server/cli" not in frame
            and "__main__" not in frame
        ][:top],
        "nearest_lien_module": [(name, round(100 * n / share, 1)) for name, n in modules.most_common(top)],
    }


def profile_markdown(profiles: dict[str, Any]) -> list[str]:
    lines = []
    for phase, summary in profiles.items():
        lines += [
            f"### py-spy, Lien node 1, phase `{phase}` ({summary['samples']:,} samples of the event loop "
            "thread while it ran)",
            "",
            "| % | Lien frame, including what it calls |",
            "| ---: | --- |",
        ]
        lines += [f"| {pct} | `{frame}` |" for frame, pct in summary["including"]]
        lines += ["", "| % | innermost Lien module on the stack |", "| ---: | --- |"]
        lines += [f"| {pct} | `{name}` |" for name, pct in summary["nearest_lien_module"]]
        lines += ["", "| % | own time (any frame) |", "| ---: | --- |"]
        lines += [f"| {pct} | `{frame}` |" for frame, pct in summary["own"]]
        lines.append("")
    return lines


def _processes(count: int) -> str:
    if count == 1:
        return "one process"
    return (
        f"{count} processes sharing the devices and the rate, each phase started by all together, "
        "latencies merged from every sample; the load generator's CPU is their sum"
    )
