"""What processes cost: CPU time from /proc/<pid>/stat, memory from /proc/<pid>/status.

A phase is bracketed by two ``CpuSnapshot`` readings; their difference says how many
CPU seconds each process spent in it, and so which process was busiest. The machine's
own counters (/proc/stat) give the total, so that load from anything else running on
the machine at the same time shows up as "rest of the machine" instead of hiding.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CLIENT = "bench client"  # the label of the process generating the load
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or ")".
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # Fields 14 and 15 of proc(5), utime and stime; the list starts at field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now), VmHWM (peak resident) and Pss of a process, in KiB.

    Pss (from smaps_rollup) shares each page among the processes that map it, so
    the shared libraries every Python service loads are not counted once per process.
    """
    values: dict[str, int] = {}
    for name, wanted in (("status", ("VmRSS", "VmHWM")), ("smaps_rollup", ("Pss",))):
        try:
            lines = (PROC / str(pid) / name).read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in lines:
            key, _, rest = line.partition(":")
            if key in wanted:
                values[key] = int(rest.split()[0])
    return values


def command(pid: int) -> str:
    """The process's command line, for a human reading the report."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents[int(fields[1])].append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stack_processes(pid_dir: Path) -> dict[str, int]:
    """Label → pid for every process a stack started, and each one's descendants.

    The Taskiq worker, for one, runs its jobs in a child process of the pid the stack
    recorded, so the child is listed too, as ``worker child``: a label that stays the
    same when a child dies and is replaced, so that CPU and memory add up across it.
    """
    processes: dict[str, int] = {}
    for pid_file in sorted(pid_dir.glob("*.pid")):
        pid = int(pid_file.read_text())
        processes[pid_file.stem] = pid
        children = descendants(pid)
        for number, child in enumerate(children, 1):
            suffix = f" {number}" if len(children) > 1 else ""
            processes[f"{pid_file.stem} child{suffix}"] = child
    return processes


@dataclass
class Memory:
    """The largest memory reading of one labelled process, in MiB."""

    pid: int
    rss_mib: float
    pss_mib: float
    peak_rss_mib: float
    command: str


class MemoryLog:
    """Memory of every stack process, read after each phase; the largest is kept.

    A process that died since (a replaced worker child) keeps its reading under its
    label, so a restart does not hide what the process had grown to.
    """

    def __init__(self, pid_dir: Path) -> None:
        self._pid_dir = pid_dir
        self.largest: dict[str, Memory] = {}

    def sample(self) -> None:
        """Read every stack process's memory, and this process's, now."""
        processes = stack_processes(self._pid_dir)
        processes[CLIENT] = os.getpid()
        for label, pid in processes.items():
            kib = memory_kib(pid)
            if "VmRSS" not in kib:
                continue
            now = Memory(
                pid=pid,
                rss_mib=round(kib["VmRSS"] / 1024, 1),
                pss_mib=round(kib.get("Pss", 0) / 1024, 1),
                peak_rss_mib=round(kib.get("VmHWM", 0) / 1024, 1),
                command=command(pid)[:160],
            )
            before = self.largest.get(label)
            if before is not None:
                peak = max(before.peak_rss_mib, now.peak_rss_mib)
                now = max(before, now, key=lambda memory: memory.rss_mib)
                now.peak_rss_mib = peak
            self.largest[label] = now

    def as_dict(self) -> dict[str, dict[str, object]]:
        """Label → the largest reading, as JSON."""
        return {label: asdict(memory) for label, memory in self.largest.items()}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in first[:8]]  # user nice system idle iowait ...
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds of labelled processes, and of the machine, at one moment."""

    wall: float
    machine_busy: float
    machine_total: float
    per_pid: dict[int, tuple[str, float]] = field(default_factory=dict)

    @classmethod
    def take(cls, wall: float, processes: Mapping[int, str]) -> CpuSnapshot:
        """Read every process's CPU time now; pid → label."""
        busy, total = machine_cpu()
        per_pid = {}
        for pid, label in processes.items():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                per_pid[pid] = (label, seconds)
        return cls(wall, busy, total, per_pid)


@dataclass(frozen=True)
class CpuUse:
    """How much CPU each labelled group of processes used between two snapshots."""

    wall_seconds: float
    cores: int
    seconds_by_label: dict[str, float]
    machine_busy_seconds: float

    @property
    def ours_seconds(self) -> float:
        """CPU seconds of every process this benchmark watches."""
        return sum(self.seconds_by_label.values())

    @property
    def busiest(self) -> tuple[str, float]:
        """The label that used the most CPU, and its share of one core (0-1)."""
        if not self.seconds_by_label:
            return "-", 0.0
        label = max(self.seconds_by_label, key=self.seconds_by_label.__getitem__)
        return label, self.seconds_by_label[label] / self.wall_seconds

    def per_request(self, requests: int) -> dict[str, float]:
        """CPU milliseconds each label spent per request, and the serving side's sum.

        Unlike throughput, this hardly changes when other work shares the machine,
        and ``cores / server_total`` is the rate at which the serving processes
        alone would fill every core.
        """
        if not requests:
            return {}
        per = {
            label: round(seconds * 1000 / requests, 3)
            for label, seconds in sorted(
                self.seconds_by_label.items(), key=lambda item: -item[1]
            )
            if seconds > 0
        }
        server = sum(ms for label, ms in per.items() if label != CLIENT)
        return {**per, "server_total": round(server, 3)}

    def as_dict(self) -> dict[str, object]:
        """The figures as JSON: each group's share of one core, and the machine's."""
        wall = self.wall_seconds
        rest = max(self.machine_busy_seconds - self.ours_seconds, 0.0)
        return {
            "wall_seconds": round(wall, 3),
            "core_share": {
                label: round(seconds / wall, 3)
                for label, seconds in sorted(
                    self.seconds_by_label.items(), key=lambda item: -item[1]
                )
            },
            "rest_of_machine_core_share": round(rest / wall, 3),
            "machine_busy_fraction": round(
                self.machine_busy_seconds / (wall * self.cores), 3
            ),
        }


def cpu_use(before: CpuSnapshot, after: CpuSnapshot, cores: int) -> CpuUse:
    """The CPU each label used from ``before`` to ``after``.

    A pid that appears only in ``after`` (a database connection opened during the
    phase) counts from zero; one that disappeared is left out.
    """
    by_label: dict[str, float] = defaultdict(float)
    for pid, (label, seconds) in after.per_pid.items():
        start = before.per_pid.get(pid, (label, 0.0))[1]
        by_label[label] += max(seconds - start, 0.0)
    return CpuUse(
        wall_seconds=after.wall - before.wall,
        cores=cores,
        seconds_by_label=dict(by_label),
        machine_busy_seconds=after.machine_busy - before.machine_busy,
    )
