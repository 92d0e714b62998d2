"""The sandbox's cgroups: cgroup v2 where the host delegates it, cgroup v1 otherwise.

Each sandbox worker gets its own cgroup with a memory limit and a process-count limit,
created *below the host's own cgroup*, so a limit the host runs under still holds.
Each controller comes from the hierarchy that offers it:

* **cgroup v2** (the one unified hierarchy most current distros mount alone): the host's
  cgroup (``0::/path`` in ``/proc/self/cgroup``) must be writable by the host (root, or
  a subtree delegated to its user, e.g. ``systemd-run --user --scope -p Delegate=yes``)
  and offer ``memory``/``pids`` in ``cgroup.controllers``. v2 lets a cgroup enable
  controllers for its children only while it holds no processes itself; when the host
  process is alone in its cgroup it first moves into a leaf child
  ``slmkit-host-<pid>`` (still below, so still limited), as container runtimes do; when
  other processes share the cgroup nothing is moved and v2 is not used, and
  :attr:`Cgroups.note` says why. Limits: ``memory.max`` with ``memory.swap.max=0`` and
  ``memory.oom.group``, ``pids.max``; OOM kills counted from ``memory.events``;
  ``cgroup.kill`` kills every member at once.
* **cgroup v1** (legacy and hybrid hosts, where the controllers are bound to their own
  hierarchies): ``memory.limit_in_bytes`` (and ``memsw``), ``pids.max``; root only.

Without either the caller falls back to rlimits, and the isolation report says so.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CONTROLLERS", "Cgroups", "Delegation", "delegate_v2", "v2_base"]

CONTROLLERS = ("memory", "pids")
_NAME = re.compile(r"slmkit-(?:sandbox|host)-(\d+)(?:-\d+)?$")
_serial = itertools.count()
_swept: set[Path] = set()
_lock = threading.Lock()
_delegation: Delegation | None = None


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _mounts() -> list[tuple[str, str, Path, set[str]]]:
    """``(fstype, root, mount point, super options)`` of the cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            before, _, after = line.partition(" - ")
            fstype, _source, options = [*after.split(), "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                fields = before.split()
                out.append((fstype, fields[3], Path(fields[4]), set(options.split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """Our cgroup path per v1 controller, and under ``""`` in the v2 hierarchy."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _below(mount: Path, root: str, path: str) -> Path | None:
    """The directory of cgroup ``path`` under a mount of the hierarchy at ``root``."""
    rel = os.path.relpath(path, root)
    return None if rel.startswith("..") else (mount / rel).resolve()


def v2_base() -> Path | None:
    """The host's own cgroup directory in the v2 hierarchy, if one is mounted."""
    own = _own_paths().get("")
    for fstype, root, mount, _options in _mounts():
        if fstype == "cgroup2" and own is not None:
            return _below(mount, root, own)
    return None


def _v1_bases() -> dict[str, Path]:
    """The directory of our own cgroup in each mounted v1 hierarchy we use."""
    own = _own_paths()
    bases: dict[str, Path] = {}
    for fstype, root, mount, options in _mounts():
        for controller in CONTROLLERS:
            if fstype == "cgroup" and controller in options and controller in own:
                base = _below(mount, root, own[controller])
                if base is not None:
                    bases[controller] = base
    return bases


@dataclass(frozen=True)
class Delegation:
    """Where v2 sandbox cgroups go (``parent``), the controllers enabled for them, and
    why v2 gives fewer than asked (``note``, None when it gives them all or is absent)."""

    parent: Path | None
    controllers: frozenset[str]
    note: str | None = None


def delegate_v2(base: Path, wanted: Collection[str] = CONTROLLERS) -> Delegation:
    """Make ``base`` (the host's own v2 cgroup) a parent of sandbox cgroups with the
    ``wanted`` controllers enabled for its children; see the module docs."""
    try:
        offered = set(_read(base / "cgroup.controllers").split()) & set(wanted)
        enabled = set(_read(base / "cgroup.subtree_control").split())
    except OSError as exc:
        return Delegation(None, frozenset(), f"cannot read the cgroup v2 cgroup {base}: {exc}")
    if not offered:
        return Delegation(
            None,
            frozenset(),
            f"the cgroup v2 hierarchy offers no {'/'.join(sorted(wanted))} controller at "
            f"{base} (on this host they are bound to cgroup v1 or not delegated)",
        )
    if not os.access(base / "cgroup.subtree_control", os.W_OK) or not os.access(base, os.W_OK):
        return Delegation(
            None, frozenset(), f"the cgroup v2 cgroup {base} is not delegated to uid {os.geteuid()}"
        )
    missing = sorted(offered - enabled)
    if missing:
        why = _enable(base, missing)
        if why is not None:
            return Delegation(None, frozenset(), why)
    _sweep(base)
    return Delegation(base, frozenset(offered))


def _enable(base: Path, controllers: list[str]) -> str | None:
    """Enable ``controllers`` for ``base``'s children, moving the host process into a
    leaf first when it is alone in ``base``; None on success, else why not."""
    request = " ".join(f"+{c}" for c in controllers)
    try:
        (base / "cgroup.subtree_control").write_text(request)
        return None
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return f"cannot enable {request} in {base}: {exc}"
    try:
        members = _read(base / "cgroup.procs").split()
    except OSError as exc:
        return f"cannot read the members of {base}: {exc}"
    if members != [str(os.getpid())]:
        return (
            f"the host's cgroup v2 cgroup {base} holds {len(members)} processes, so it cannot "
            "give controllers to sandbox cgroups; run the host in a cgroup of its own "
            "(e.g. systemd-run --user --scope -p Delegate=yes ...)"
        )
    leaf = base / f"slmkit-host-{os.getpid()}"
    try:
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (base / "cgroup.subtree_control").write_text(request)
    except OSError as exc:
        return f"cannot move the host into {leaf} to delegate {base}: {exc}"
    return None


def _delegated() -> Delegation:
    """The host's v2 delegation, set up once per process."""
    global _delegation
    with _lock:
        if _delegation is None:
            base = v2_base()
            _delegation = Delegation(None, frozenset()) if base is None else delegate_v2(base)
        return _delegation


def _sweep(base: Path) -> None:
    """Remove empty cgroups left under ``base`` by host processes that died."""
    if base in _swept:
        return
    _swept.add(base)
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            match = _NAME.match(entry.name)
            if match and not os.path.exists(f"/proc/{match.group(1)}"):
                with contextlib.suppress(OSError):
                    entry.rmdir()


def _settings(
    version: str, controller: str, memory_bytes: int, max_pids: int
) -> list[tuple[str, int, bool]]:
    """``(file, value, required)`` of a controller's limits in a hierarchy version."""
    if controller == "pids":
        return [("pids.max", max_pids, True)]
    if version == "v2":
        # No swap (a memory bomb is stopped, not pushed to swap); an OOM kills the group.
        return [
            ("memory.max", memory_bytes, True),
            ("memory.swap.max", 0, False),
            ("memory.oom.group", 1, False),
        ]
    return [
        ("memory.limit_in_bytes", memory_bytes, True),
        ("memory.memsw.limit_in_bytes", memory_bytes, False),
    ]


@dataclass
class Cgroups:
    """The cgroups of one sandbox worker: ``dirs`` by controller (a v2 cgroup serves
    both), ``v2`` the v2 one among them, ``note`` why v2 was not (fully) used."""

    dirs: dict[str, Path]
    v2: Path | None = None
    note: str | None = None
    _unique: list[Path] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, memory_bytes: int, max_pids: int) -> Cgroups:
        delegation = _delegated()
        name = f"slmkit-sandbox-{os.getpid()}-{next(_serial)}"
        out = cls({}, note=delegation.note)
        if delegation.parent is not None:
            path = delegation.parent / name
            if out._make(path, "v2", delegation.controllers, memory_bytes, max_pids):
                out.v2 = path
        rest = [c for c in CONTROLLERS if c not in out.dirs]
        if rest and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                for controller, base in _v1_bases().items():
                    if controller in rest:
                        _sweep(base)
                        out._make(base / name, "v1", [controller], memory_bytes, max_pids)
        return out

    def _make(
        self,
        path: Path,
        version: str,
        controllers: Collection[str],
        memory_bytes: int,
        max_pids: int,
    ) -> bool:
        try:
            path.mkdir()
        except OSError:
            return False
        try:
            for controller in controllers:
                for filename, value, required in _settings(
                    version, controller, memory_bytes, max_pids
                ):
                    try:
                        (path / filename).write_text(str(value))
                    except OSError:
                        if required:
                            raise
        except OSError:
            path.rmdir()
            return False
        for controller in controllers:
            self.dirs[controller] = path
        self._unique.append(path)
        return True

    @property
    def memory(self) -> bool:
        return "memory" in self.dirs

    @property
    def pids(self) -> bool:
        return "pids" in self.dirs

    @property
    def versions(self) -> dict[str, str]:
        """``{"memory": "v2", "pids": "v1"}``: the hierarchy of each controller in use."""
        return {c: "v2" if d == self.v2 else "v1" for c, d in self.dirs.items()}

    def add(self, pid: int) -> None:
        for path in self._unique:
            (path / "cgroup.procs").write_text(str(pid))

    def members(self) -> list[int]:
        for path in self._unique:
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
        paths: dict[str, str] = {}
        for line in lines:
            _id, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
        return all(
            paths.get("" if d == self.v2 else c, "").endswith("/" + d.name)
            for c, d in self.dirs.items()
        )

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for exceeding the memory limit."""
        if not self.memory:
            return 0
        path = self.dirs["memory"]
        events = "memory.events" if path == self.v2 else "memory.oom_control"
        try:
            text = (path / events).read_text()
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
        if self.v2 is not None:
            with contextlib.suppress(OSError):
                (self.v2 / "cgroup.kill").write_text("1")  # all at once (Linux 5.14+)
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
        for path in self._unique:
            for _ in range(200):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.dirs, self._unique, self.v2 = {}, [], None
