"""Host-side Linux plumbing of the sandbox: the process table, cgroups v1, rlimits.

Everything here reads ``/proc`` and ``/sys/fs/cgroup`` from the *host's* point of view,
which is what lets the host check and enforce the sandbox's limits without trusting a
word the sandboxed process says.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cgroups", "ProcHandle", "children_of", "read_limits", "read_status"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` from the state on (the name may contain spaces)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def _process_table() -> dict[int, tuple[int, int]]:
    """Every live process: its parent and its session."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and fields[0] not in "ZX":
                table[int(entry)] = (int(fields[1]), int(fields[3]))
    return table


def children_of(parent: int) -> list[int]:
    return [pid for pid, (ppid, _sid) in _process_table().items() if ppid == parent]


def _tree_and_session(root: int) -> list[int]:
    """Descendants of ``root``, plus the orphans of its session that were re-parented
    away (a killed fork bomb's children land under init, still in the session)."""
    table = _process_table()
    found = [pid for pid, (_ppid, sid) in table.items() if sid == root and pid != root]
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _sid) in table.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def read_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a dict (empty when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def read_limits(pid: int) -> dict[str, tuple[str, str]]:
    """``/proc/PID/limits``: ``{"Max file size": ("67108864", "67108864"), ...}``."""
    with open(f"/proc/{pid}/limits") as fh:
        lines = fh.read().splitlines()[1:]
    return {line[:26].strip(): (line[26:47].strip(), line[47:68].strip()) for line in lines}


class ProcHandle:
    """A process we may have to kill later, immune to pid reuse.

    Uses a pidfd where the kernel has them (5.3+); otherwise it re-checks the start time
    before each signal, so a recycled pid never gets a SIGKILL meant for a sandbox.
    """

    def __init__(self, pid: int) -> None:
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessLookupError(pid)
        self.pid = pid
        self._start = fields[19]
        self._fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self._fd = os.pidfd_open(pid)

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        return fields is not None and fields[19] == self._start and fields[0] not in "ZX"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self._fd is not None:
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            elif self.alive():
                os.kill(self.pid, signal.SIGKILL)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads)."""
        fields = _stat_fields(self.pid)
        if fields is None or fields[19] != self._start:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def kill_tree(self, timeout_s: float = 5.0) -> None:
        """SIGKILL the process, everything below it and the rest of its session (it is a
        session leader), until nothing is left."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            others = _tree_and_session(self.pid)
            if not others and not self.alive():
                return
            for pid in others:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.kill()
            time.sleep(0.005)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ------------------------------------------------------------------------ cgroups


def _v1_bases() -> dict[str, Path]:
    """The directory of our own cgroup in each mounted v1 hierarchy we use."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            before, _, after = line.partition(" - ")
            fstype, _source, options = [*after.split(), "", ""][:3]
            if fstype != "cgroup":
                continue
            for controller in ("memory", "pids"):
                if controller in options.split(","):
                    mounts[controller] = Path(before.split()[4])
    bases: dict[str, Path] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                if controller in mounts:
                    bases[controller] = mounts[controller] / path.lstrip("/")
    return bases


_NAME = re.compile(r"slmkit-sandbox-(\d+)-\d+$")
_serial = itertools.count()
_swept = False


def _sweep_stale(bases: dict[str, Path]) -> None:
    """Remove empty cgroups left by host processes that died without cleaning up."""
    global _swept
    if _swept:
        return
    _swept = True
    for base in bases.values():
        with contextlib.suppress(OSError):
            for entry in base.iterdir():
                match = _NAME.match(entry.name)
                if match and not os.path.exists(f"/proc/{match.group(1)}"):
                    with contextlib.suppress(OSError):
                        entry.rmdir()


@dataclass
class Cgroups:
    """The v1 ``memory`` and ``pids`` cgroups of one sandbox worker (maybe neither).

    They are created as children of the host's own cgroups, so a limit the host itself
    runs under still applies to the sandbox. Without write access (not root, or cgroup
    v2 without delegation) the dict is empty and the caller falls back to rlimits.
    """

    dirs: dict[str, Path]

    @classmethod
    def create(cls, memory_bytes: int, max_pids: int) -> Cgroups:
        if os.geteuid() != 0:
            return cls({})
        try:
            bases = _v1_bases()
        except OSError:
            return cls({})
        _sweep_stale(bases)
        name = f"slmkit-sandbox-{os.getpid()}-{next(_serial)}"
        settings = {
            "memory": [("memory.limit_in_bytes", memory_bytes)],
            "pids": [("pids.max", max_pids)],
        }
        dirs: dict[str, Path] = {}
        for controller, base in bases.items():
            path = base / name
            try:
                path.mkdir()
            except OSError:
                continue
            dirs[controller] = path
            try:
                for filename, value in settings[controller]:
                    (path / filename).write_text(str(value))
            except OSError:
                path.rmdir()
                del dirs[controller]
        if "memory" in dirs:
            # Without this, a memory bomb would be pushed to swap instead of stopped.
            with contextlib.suppress(OSError):
                (dirs["memory"] / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        return cls(dirs)

    @property
    def memory(self) -> bool:
        return "memory" in self.dirs

    @property
    def pids(self) -> bool:
        return "pids" in self.dirs

    def add(self, pid: int) -> None:
        for path in self.dirs.values():
            (path / "cgroup.procs").write_text(str(pid))

    def members(self) -> list[int]:
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                return [int(x) for x in (path / "cgroup.procs").read_text().split()]
        return []

    def contains(self, pid: int) -> bool:
        """Whether ``pid`` is in every one of these cgroups (checked from its side)."""
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return False
        paths = {c: p for line in lines for _, cs, p in [line.split(":", 2)] for c in cs.split(",")}
        return all(paths.get(c, "").endswith("/" + d.name) for c, d in self.dirs.items())

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for exceeding the memory limit."""
        if not self.memory:
            return 0
        try:
            text = (self.dirs["memory"] / "memory.oom_control").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def kill_all(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every process inside until none is left (a fork bomb included: the
        pids limit bounds how many there can be, so this converges)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self.members()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        """Remove the cgroups (after :meth:`kill_all`); a dying task may hold one a bit."""
        for path in self.dirs.values():
            for _ in range(200):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.dirs = {}
