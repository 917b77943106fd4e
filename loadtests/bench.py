"""``make bench``: Lien on PostgreSQL + Redis with two nodes, against the baseline relay, same load.

    python -m loadtests.bench [--duration 20] [--devices 200] [--rate 2000] [--out-dir loadtests/results]

Starts its own Redis on a free port and creates a fresh PostgreSQL database
(127.0.0.1:5432, user postgres, trust auth; dropped afterwards), starts two
Lien nodes (``lien serve``, separate processes) on them, and runs the asyncio
driver (``loadtests/driver.py``) through its phases; then stops them, starts
two baseline relays (``loadtests/baseline_relay.py``) on the same Redis, and
runs the very same driver with the same settings against them. While the
driver measures, this process reads the CPU time and memory of every server
process (and of the PostgreSQL backends serving the bench database) from
/proc. It writes ``<out-dir>/<date>.md``, ``.csv`` and ``.json``.

Everything binds to 127.0.0.1; every process it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import datetime
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from loadtests import node_metrics, procstat, report, services
from loadtests.driver import LAG_POINTS, summary_ms

RESULTS = Path(__file__).parent / "results"

Backends = dict[int, procstat.Sample]
"""The bench database's PostgreSQL backends, by pid."""

DEFAULT_PROFILE_PHASES = "pairs,groups"
"""The closed loops. py-spy sampling node 1 at 100 Hz takes about 8 % of a core (measured on this
project's 2-core machines): near saturation that shifts a latency tail, so the fixed-rate phases,
which judge latency, run without it unless named in ``--profile-phases``."""


class Watcher:
    """Samples fixed pids and the bench database's PostgreSQL backends when the driver says so.

    With ``profile`` (a pid and a directory), it also records that process
    with py-spy during the measured windows of ``profile_phases``
    (``<dir>/<phase>.txt``, collapsed stacks).
    With ``metrics_urls`` (Lien's nodes), it reads their latency histograms at
    both ends of each window (``loadtests/node_metrics.py``).
    """

    def __init__(
        self,
        pids: dict[str, int],
        database: services.PostgresDatabase | None,
        *,
        profile: tuple[int, Path, float] | None = None,
        profile_phases: frozenset[str] = frozenset(),
        metrics_urls: list[str] | None = None,
    ) -> None:
        self.pids = pids
        self.metrics_urls = metrics_urls or []
        self.node_latency: dict[str, dict[str, Any]] = {}
        self._histograms: dict[str, node_metrics.Buckets] = {}
        self.database = database
        self.profile = profile
        self.profile_phases = profile_phases
        self.profiles: dict[str, Path] = {}
        self.windows: dict[str, dict[str, Any]] = {}
        self._open: dict[str, tuple[float, dict[str, procstat.Sample | None], Backends]] = {}
        self._machine: dict[str, procstat.Machine] = {}
        self.machine: dict[str, dict[str, float]] = {}
        """Per window: the machine's CPU pressure and steal (``procstat.machine_window``)."""
        self._activity: dict[str, dict[str, int]] = {}
        self._threads: list[threading.Thread] = []

    def in_background(self, what: str, phase: str) -> None:
        """Run ``start`` or ``stop`` for ``phase`` without holding up the driver's output."""
        thread = threading.Thread(target=getattr(self, what), args=(phase,))
        self._threads.append(thread)
        thread.start()

    def finish(self) -> None:
        """Wait for every ``start`` and ``stop`` begun (the last window's figures come last)."""
        for thread in self._threads:
            thread.join()

    def _postgres(self) -> Backends:
        if self.database is None:
            return {}
        found = {}
        for pid in self.database.backend_pids():
            sample = procstat.sample(pid)
            if sample is not None:
                found[pid] = sample
        return found

    def start(self, phase: str) -> None:
        if self.metrics_urls:
            self._histograms[phase] = node_metrics.scrape(self.metrics_urls)
        samples = {name: procstat.sample(pid) for name, pid in self.pids.items()}
        self._open[phase] = (time.monotonic(), samples, self._postgres())
        self._machine[phase] = procstat.machine()
        if self.database is not None:
            self._activity[phase] = self.database.activity()
        spy = Path(sys.executable).parent / "py-spy"
        spy_path = str(spy) if spy.exists() else shutil.which("py-spy")
        if self.profile is not None and spy_path and phase in self.profile_phases:
            pid, directory, seconds = self.profile
            out = directory / f"profile-{phase}.txt"
            argv = [spy_path, "record", "-p", str(pid), "-d", str(max(1, int(seconds) - 1)), "-r", "100"]
            argv += ["-f", "raw", "-o", str(out), "--nonblocking"]
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.profiles[phase] = out

    def stop(self, phase: str) -> None:
        if phase not in self._open:
            return
        started, before, pg_before = self._open.pop(phase)
        after = {name: procstat.sample(pid) for name, pid in self.pids.items()}
        pg_after = self._postgres()
        self.machine[phase] = procstat.machine_window(self._machine.pop(phase), procstat.machine())
        seconds = time.monotonic() - started
        if self.metrics_urls:
            histograms = node_metrics.scrape(self.metrics_urls)
            self.node_latency[phase] = node_metrics.window(self._histograms.pop(phase, {}), histograms)
        window: dict[str, Any] = {
            name: procstat.window(before[name], after[name], seconds) for name in self.pids
        }
        if self.database is not None:
            window["postgresql"] = _backends_window(pg_before, pg_after, seconds)
            time.sleep(1.0)  # PostgreSQL publishes its statistics about once a second
            activity = self.database.activity()
            counted_from = self._activity.pop(phase, {})
            window["postgresql"].update(
                {key: value - counted_from.get(key, 0) for key, value in activity.items()}
            )
        self.windows[phase] = window


_NEW_BACKEND = procstat.Sample(cpu_s=0.0, rss_kib=0, peak_rss_kib=0, sockets=0, syscalls=0)
"""Where a backend that started during a window counts from."""


def _backends_window(before: Backends, after: Backends, seconds: float) -> dict[str, Any]:
    """The bench database's backends over a window, added up (a backend new in the window counts from 0)."""
    pairs = [(before.get(pid, _NEW_BACKEND), now) for pid, now in after.items()]
    cpu = sum(now.cpu_s - then.cpu_s for then, now in pairs)
    found: dict[str, Any] = {
        "cpu_s": round(cpu, 2),
        "cpu_share": round(cpu / seconds, 3),
        "backends": len(after),
    }
    calls = [
        now.syscalls - then.syscalls
        for then, now in pairs
        if now.syscalls is not None and then.syscalls is not None
    ]
    if calls and len(calls) == len(pairs):
        found["syscalls"] = sum(calls)
    return found


def run_driver(
    target: str, urls: list[str], arguments: argparse.Namespace, watcher: Watcher, workdir: Path
) -> dict[str, Any]:
    """Run the driver against ``urls``: one process, or ``--driver-processes`` that share the load.

    Several processes split the devices (pairs and groups stay within one
    process) and the offered rate, start every phase together (each says
    ``@@ready`` and waits for a line on its stdin) and are merged phase by
    phase: counts added, latencies and loop lateness from every raw sample,
    the load generator's CPU summed. The first process's markers time the
    servers' measurements.
    """
    count = arguments.driver_processes
    if arguments.devices % (2 * count) or (
        "groups" in arguments.phases and arguments.devices % (arguments.group_size * count)
    ):
        raise SystemExit("--devices must split evenly into pairs and groups over --driver-processes")
    drivers: list[subprocess.Popen[bytes]] = []
    logs = []
    outs = [workdir / f"driver-{target}-{index}.json" for index in range(count)]
    ready = threading.Barrier(count)
    try:
        for index, out in enumerate(outs):
            argv = [
                sys.executable, "-m", "loadtests.driver", "--target", target,
                *[item for url in urls for item in ("--url", url)],
                "--devices", str(arguments.devices // count), "--phases", arguments.phases,
                "--window", str(arguments.window),
                "--rate", str(arguments.rate), "--rate-divisor", str(count),
                "--group-size", str(arguments.group_size), "--group-window", str(arguments.group_window),
                "--warmup", str(arguments.warmup), "--duration", str(arguments.duration), "--out", str(out),
                *(["--barrier", "--raw"] if count > 1 else []),
            ]  # fmt: skip
            logs.append(open(workdir / f"driver-{target}-{index}.log", "wb"))  # noqa: SIM115 - closed below
            drivers.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[-1])
            )
        readers = [
            threading.Thread(target=_follow, args=(driver, index == 0, ready, watcher), daemon=True)
            for index, driver in enumerate(drivers)
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + arguments.timeout
        for driver in drivers:
            driver.wait(max(1.0, deadline - time.monotonic()))
        for reader in readers:
            reader.join(10)
    finally:
        ready.abort()
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
                driver.wait(10)
        for log in logs:
            log.close()
    watcher.finish()  # the last window's stop may still be scraping and sampling
    for index, driver in enumerate(drivers):
        if driver.returncode != 0:
            log_text = (workdir / f"driver-{target}-{index}.log").read_text()[-4000:]
            raise RuntimeError(f"driver {index} for {target} failed:\n{log_text}")
    parts: list[dict[str, Any]] = [json.loads(out.read_text()) for out in outs]
    result = parts[0] if count == 1 else _merge(parts)
    result["driver_processes"] = count
    for phase in result["phases"]:
        phase.setdefault("processes", {}).update(watcher.windows.get(phase["phase"], {}))
        if phase["phase"] in watcher.node_latency:
            phase["node_latency"] = watcher.node_latency[phase["phase"]]
        if phase["phase"] in watcher.machine:
            phase["machine"] = watcher.machine[phase["phase"]]
    return result


def _follow(
    driver: subprocess.Popen[bytes], timing: bool, ready: threading.Barrier, watcher: Watcher
) -> None:
    """Read one driver's stdout: phase barriers for all, measurement markers from the timing one."""
    assert driver.stdout is not None and driver.stdin is not None
    for raw in driver.stdout:
        line = raw.decode(errors="replace").strip()
        if line.startswith("@@ready "):
            try:
                ready.wait()
            except threading.BrokenBarrierError:
                return
            with contextlib.suppress(OSError):
                driver.stdin.write(b"go\n")
                driver.stdin.flush()
        elif timing and line.startswith("@@measure "):
            _, what, phase = line.split()
            watcher.in_background(what, phase)


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Error counts by code, added up."""
    total: collections.Counter[str] = collections.Counter()
    for count in counts:
        total.update(count)
    return dict(total)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several driver processes' results, phase by phase."""
    merged: dict[str, Any] = {
        "target": parts[0]["target"],
        "setup_s": max(part["setup_s"] for part in parts),
        "setup_errors": _summed(part["setup_errors"] for part in parts),
        "phases": [],
    }
    for phases in zip(*(part["phases"] for part in parts), strict=True):
        if any("skipped" in phase for phase in phases):
            merged["phases"].append(phases[0])
            continue
        seconds = max(phase["seconds"] for phase in phases)
        latencies = [value for phase in phases for value in phase.pop("raw_latencies_s")]
        lags = [value for phase in phases for value in phase.pop("raw_loop_lags_s")]
        generator = [phase["processes"].get("load generator", {}) for phase in phases]
        merged["phases"].append(
            {
                "phase": phases[0]["phase"],
                "seconds": seconds,
                "deliveries": sum(phase["deliveries"] for phase in phases),
                "deliveries_per_s": round(sum(phase["deliveries_per_s"] for phase in phases), 1),
                "messages_sent": sum(phase["messages_sent"] for phase in phases),
                "messages_per_s": round(sum(phase["messages_per_s"] for phase in phases), 1),
                "receipts_returned": sum(phase.get("receipts_returned", 0) for phase in phases),
                "receipts_per_s": round(sum(phase.get("receipts_per_s", 0.0) for phase in phases), 1),
                "latency_ms": summary_ms(latencies),
                "loop_lag_ms": summary_ms(lags, LAG_POINTS),
                "errors": _summed(phase["errors"] for phase in phases),
                "undelivered_after_drain": sum(phase.get("undelivered_after_drain", 0) for phase in phases),
                "processes": {
                    "load generator": {
                        "cpu_s": round(sum(item.get("cpu_s", 0.0) for item in generator), 2),
                        "cpu_share": round(sum(item.get("cpu_share", 0.0) for item in generator), 3),
                        **_mean_waited(generator),
                        **_summed_syscalls(generator),
                    }
                },
            }
        )
    return merged


def _from_every(processes: list[dict[str, Any]], key: str) -> list[Any]:
    """Every process's ``key``; empty unless every one has it (a figure from some of them would mislead)."""
    values = [item[key] for item in processes if key in item]
    return values if len(values) == len(processes) else []


def _mean_waited(processes: list[dict[str, Any]]) -> dict[str, float]:
    """How long the generator processes waited for a core: their mean share, when every one says."""
    shares = _from_every(processes, "waited_share")
    return {"waited_share": round(sum(shares) / len(shares), 3)} if shares else {}


def _summed_syscalls(processes: list[dict[str, Any]]) -> dict[str, int]:
    """The generator processes' system calls added up, when every one counted them."""
    counts = _from_every(processes, "syscalls")
    return {"syscalls": sum(counts)} if counts else {}


@contextlib.contextmanager
def cluster(
    kind: str, workdir: Path, redis_url: str, database_url: str
) -> Iterator[tuple[list[str], dict[str, int]]]:
    nodes: list[services.Process] = []
    try:
        urls = []
        for number in (1, 2):
            name = f"{kind}-{number}"
            if kind == "lien":
                process, url = services.start_lien_node(
                    name, workdir, database_url=database_url, redis_url=redis_url
                )
            else:
                process, url = services.start_baseline_node(name, workdir, redis_url=redis_url)
            nodes.append(process)
            urls.append(url)
        yield urls, {process.name: process.pid for process in nodes}
    finally:
        for process in nodes:
            process.stop()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    # The overloaded phase last: what it leaves in the inboxes would be delivered during the next one.
    parser.add_argument("--phases", default="pairs,rate:250,rate:500,rate:1000,receipts:250,groups,rate")
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--group-window", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one driver run may take")
    parser.add_argument(
        "--driver-processes",
        type=int,
        default=1,
        help="load generator processes sharing the devices and the rate (phases start together)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-profile", dest="profile", action="store_false", help="do not run py-spy on Lien's node 1"
    )
    parser.add_argument(
        "--profile-phases",
        default=DEFAULT_PROFILE_PHASES,
        help="phases during which py-spy records Lien's node 1 (comma-separated; default: the closed loops)",
    )
    parser.add_argument("--name", help="report file name without extension (default: the date and time)")
    parser.add_argument(
        "--no-baseline", action="store_true", help="measure Lien only (for comparing two versions of Lien)"
    )
    arguments = parser.parse_args(argv)

    started = datetime.datetime.now(datetime.UTC)
    context: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "load_before": procstat.load_average(),
        "command": "make bench"
        if argv is None and len(sys.argv) == 1
        else "python -m loadtests.bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {
            key: (str(value) if isinstance(value, Path) else value) for key, value in vars(arguments).items()
        },
    }
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="lien-bench-") as directory,
        contextlib.ExitStack() as started_here,
    ):
        workdir = Path(directory)
        redis, redis_url = services.start_redis(workdir)
        started_here.callback(redis.stop)  # also when the database cannot be created
        database = services.PostgresDatabase().create()
        started_here.callback(database.drop)
        for kind in ("lien",) if arguments.no_baseline else ("lien", "baseline"):
            with cluster(kind, workdir, redis_url, database.url) as (urls, pids):
                profile = None
                if kind == "lien" and arguments.profile:
                    profile = (pids["lien-1"], workdir, arguments.duration)
                watcher = Watcher(
                    {**pids, "redis": redis.pid},
                    database if kind == "lien" else None,
                    profile=profile,
                    profile_phases=frozenset(arguments.profile_phases.split(",")),
                    metrics_urls=urls if kind == "lien" else None,
                )
                print(f"bench: {kind} on {', '.join(urls)}", flush=True)
                results[kind] = run_driver(kind, urls, arguments, watcher, workdir)
                time.sleep(1.0)  # py-spy writes its file when its duration ends
                for phase, path in watcher.profiles.items():
                    if path.exists():
                        results[kind].setdefault("profiles", {})[phase] = report.profile_summary(path)
    context["load_after"] = procstat.load_average()
    context["elapsed_s"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds())
    name = arguments.name or started.strftime("%Y-%m-%d-%H%M")
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    rows = report.rows(results)
    (arguments.out_dir / f"{name}.json").write_text(
        json.dumps({"context": context, "results": results}, indent=2)
    )
    with open(arguments.out_dir / f"{name}.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (arguments.out_dir / f"{name}.md").write_text(report.markdown(context, results))
    print(f"bench: wrote {arguments.out_dir / name}.md, .csv and .json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
