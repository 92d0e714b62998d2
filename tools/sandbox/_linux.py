"""Host-side Linux plumbing of the sandbox: the process table, process handles, rlimits.

Everything here reads ``/proc`` and ``/sys/fs/cgroup`` from the *host's* point of view,
which is what lets the host check and enforce the sandbox's limits without trusting a
word the sandboxed process says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

__all__ = ["ProcHandle", "children_of", "read_limits", "read_status"]

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
