"""CPU time and memory of processes, read from /proc (Linux only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    cpu_s: float
    """User + system CPU seconds of the process so far."""
    rss_kib: int
    peak_rss_kib: int
    """VmHWM: the highest resident set size since the process started."""
    sockets: int


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
    return Sample(cpu, memory.get("VmRSS", 0), memory.get("VmHWM", 0), count_sockets(pid))


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


@dataclass(frozen=True)
class Machine:
    """CPU seconds of the whole machine so far, every process and the kernel, all cores added up."""

    busy_s: float
    """User, system, interrupt and softirq time (a guest's time is inside user)."""
    idle_s: float
    """Idle and I/O wait."""
    steal_s: float
    """Time a virtual machine's cores were runnable but the hypervisor ran someone else."""
    cores: int


def machine(stat_text: str | None = None) -> Machine:
    """The first line of /proc/stat, in seconds (``stat_text`` for a test)."""
    text = Path("/proc/stat").read_text() if stat_text is None else stat_text
    lines = text.splitlines()
    # cpu  user nice system idle iowait irq softirq steal [guest guest_nice, already inside user and nice]
    ticks = [int(value) for value in lines[0].split()[1:9]]
    ticks += [0] * (8 - len(ticks))
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return Machine(
        busy_s=(user + nice + system + irq + softirq) / _TICKS,
        idle_s=(idle + iowait) / _TICKS,
        steal_s=steal / _TICKS,
        cores=max(1, cores),
    )


def machine_window(before: Machine, after: Machine) -> dict[str, float]:
    """Shares of the machine's capacity (all cores) over a window: busy, and stolen by the hypervisor."""
    busy = after.busy_s - before.busy_s
    steal = after.steal_s - before.steal_s
    total = busy + steal + (after.idle_s - before.idle_s)
    if total <= 0:
        return {"busy_share": 0.0, "steal_share": 0.0, "cores": after.cores}
    return {
        "busy_share": round(busy / total, 3),
        "steal_share": round(steal / total, 3),
        "cores": after.cores,
    }


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)
