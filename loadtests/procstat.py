"""CPU time, run-queue waits, system calls and memory of processes, and the machine's CPU pressure (/proc).

A process's CPU time says what it did; the time it waited for a core, and the
share of a window in which any task did (pressure), say how much of a latency
measured beside it was queueing for the CPU on a shared machine. Its read and
write system calls, counted per delivery, do not depend on how fast the host
is that hour: they compare two versions, or two systems, across runs whose
CPU figures the host's speed moves. Linux only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    cpu_s: float
    """User + system CPU seconds of the process so far."""
    rss_kib: int
    peak_rss_kib: int
    """VmHWM: the highest resident set size since the process started."""
    sockets: int
    waited_s: float | None = None
    """Time its main thread was ready to run but waited for a core (/proc/PID/schedstat), if known."""
    syscalls: int | None = None
    """Read and write system calls so far, every thread (``syscr`` + ``syscw``, /proc/PID/io), if readable."""


def sample(pid: int) -> Sample | None:
    """None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # The command name may hold spaces: the fields after it start past the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    memory = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            memory[name] = int(value.split()[0])
    return Sample(
        cpu,
        memory.get("VmRSS", 0),
        memory.get("VmHWM", 0),
        count_sockets(pid),
        _waited_s(pid),
        _syscalls(pid),
    )


def _waited_s(pid: int) -> float | None:
    try:
        return parse_schedstat(Path(f"/proc/{pid}/schedstat").read_text())
    except OSError:
        return None


def _syscalls(pid: int) -> int | None:
    try:
        return parse_io(Path(f"/proc/{pid}/io").read_text())
    except OSError:  # another user's process, without the right to read it
        return None


def parse_io(text: str) -> int | None:
    """Read plus write system calls, from a process's /proc/PID/io (``syscr``, ``syscw``)."""
    counts = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("syscr", "syscw"):
            counts[name] = int(value)
    return counts["syscr"] + counts["syscw"] if len(counts) == 2 else None


def parse_schedstat(text: str) -> float | None:
    """Seconds a thread waited on a run queue, from its schedstat: ns running, ns waiting, time slices."""
    fields = text.split()
    return int(fields[1]) / 1e9 if len(fields) >= 2 and fields[1].isdigit() else None


def count_sockets(pid: int) -> int:
    count = 0
    try:
        for entry in os.scandir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(entry.path).startswith("socket:"):
                    count += 1
            except OSError:
                continue
    except OSError:
        return 0
    return count


def window(before: Sample | None, after: Sample | None, seconds: float) -> dict[str, Any]:
    """A process's figures over a measured window (``{"gone": True}`` if it ended meanwhile)."""
    if before is None or after is None:
        return {"gone": True}
    cpu = after.cpu_s - before.cpu_s
    found: dict[str, Any] = {
        "cpu_s": round(cpu, 2),
        "cpu_share": round(cpu / seconds, 3),
        "rss_mib": round(after.rss_kib / 1024, 1),
        "peak_rss_mib": round(after.peak_rss_kib / 1024, 1),
        "sockets": after.sockets,
    }
    if before.waited_s is not None and after.waited_s is not None:
        found["waited_share"] = round((after.waited_s - before.waited_s) / seconds, 3)
    if before.syscalls is not None and after.syscalls is not None:
        found["syscalls"] = after.syscalls - before.syscalls
    return found


def cpu_pressure_s() -> float | None:
    """Seconds so far during which some runnable task waited for a core (Linux PSI, ``some``).

    None where the kernel has no pressure information.
    """
    try:
        text = Path("/proc/pressure/cpu").read_text()
    except OSError:
        return None
    return parse_pressure(text)


def parse_pressure(text: str) -> float | None:
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind == "some":
            totals = [field.partition("=")[2] for field in fields if field.startswith("total=")]
            return int(totals[0]) / 1e6 if totals else None
    return None


def steal_s() -> float:
    """Seconds so far the hypervisor ran others while this virtual machine's cores were ready (/proc/stat)."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(first[8]) / _TICKS if len(first) > 8 else 0.0


@dataclass(frozen=True)
class Machine:
    pressure_s: float | None
    steal_s: float
    at: float
    """time.monotonic() when read."""


def machine() -> Machine:
    return Machine(cpu_pressure_s(), steal_s(), time.monotonic())


def machine_window(before: Machine, after: Machine) -> dict[str, float]:
    """Over a window: the share of it in which some task waited for a core, and the share of the
    machine's cores (all together) the hypervisor gave to other guests."""
    seconds = max(1e-9, after.at - before.at)
    found = {"steal_share": round((after.steal_s - before.steal_s) / (seconds * (os.cpu_count() or 1)), 3)}
    if before.pressure_s is not None and after.pressure_s is not None:
        found["cpu_pressure_share"] = round((after.pressure_s - before.pressure_s) / seconds, 3)
    return found


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)
