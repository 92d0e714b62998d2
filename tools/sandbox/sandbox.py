"""``PythonSandbox``: run untrusted Python in a contained, persistent child interpreter.

The code runs in a separate interpreter (see :mod:`._child`) behind every barrier the
host grants: pid, network, mount, IPC and UTS namespaces, an unprivileged uid with no
capabilities and no way back (no-new-privs), a read-only view of the host filesystem
with a private size-capped ``/tmp``, memory and process-count cgroups, rlimits (file
size, open files, core dumps, CPU per run), a scrubbed environment. Where the host
grants less it falls back step by step and the :class:`IsolationReport`, measured from
outside, says exactly what is in force. Threat model and fallbacks: ``docs/sandbox.md``.

The host side (this module) trusts nothing the sandboxed process says: the wall clock
and CPU time are watched here, output is capped here, every message is size-checked and
type-checked here, and only registered host tools can be called, with JSON in and out.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import itertools
import json
import keyword
import math
import os
import resource
import selectors
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from slmkit.tools.errors import SandboxError
from slmkit.tools.sandbox import _child
from slmkit.tools.sandbox._linux import (
    Cgroups,
    ProcHandle,
    children_of,
    read_limits,
    read_status,
)
from slmkit.tools.sandbox.results import IsolationReport, SandboxConfig, SandboxResult

__all__ = ["PythonSandbox"]

_CHILD_SCRIPT = Path(_child.__file__).resolve()
_MIB = 1 << 20
_TICK_S = 0.05
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
# One thread per numeric library: threads count against the process limit and the
# CPU-time budget, and a sandbox is not the place to fan out over every core.
_CODE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_RESERVED_NAMES = {"final_answer", "ToolCallError"}
_OWN_MOUNTS = ("/tmp", "/dev/shm", "/run", "/proc")

Outcome = Literal["done", "timeout", "cpu", "eof", "protocol"]


class _ProtocolError(Exception):
    """The sandboxed process sent something that is not a valid message."""


class _StartError(Exception):
    """A sandbox (or a fork of one) did not come up; the message says where it stopped."""


class _FrameReader:
    """Reassembles length-prefixed JSON frames from the channel, refusing big ones."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self.buf += data
        frames: list[dict[str, Any]] = []
        header = _child.FRAME_HEADER
        while len(self.buf) >= header.size:
            (size,) = header.unpack_from(self.buf)
            if size > self.limit:
                raise _ProtocolError(f"a message of {size} bytes exceeds the {self.limit} limit")
            if len(self.buf) < header.size + size:
                break
            body = bytes(self.buf[header.size : header.size + size])
            del self.buf[: header.size + size]
            try:
                frame = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise _ProtocolError(f"a message is not JSON: {exc}") from None
            if not isinstance(frame, dict):
                raise _ProtocolError("a message is not a JSON object")
            frames.append(frame)
        return frames


class _Output:
    """What one stream printed during one run, kept up to a cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = max(0, self.limit - len(self.data))
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self, name: str) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.dropped:
            text += (
                f"\n[... {self.dropped} more bytes of {name} cut: "
                f"the sandbox keeps {self.limit} bytes per run ...]\n"
            )
        return text


class _Family:
    """What a sandbox and all its forks share: the supervisor, init and namespaces.

    It lives until its last member is gone, then takes every remaining process down.
    """

    def __init__(self, proc: subprocess.Popen[bytes], lifeline_w: int, status_r: int) -> None:
        self.proc = proc
        self.lifeline_w = lifeline_w  # never written: its closing tells the supervisor
        self.status_r = status_r
        os.set_blocking(status_r, False)
        self.init: ProcHandle | None = None
        self._members = 0
        self.private_tmp = False
        self.facts: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending = b""
        self._statuses: dict[int, int] = {}
        self._lock = threading.Lock()

    def next_id(self) -> int:
        return next(self._ids)

    def forget_status(self, ns_pid: int) -> None:
        with self._lock:
            self._statuses.pop(ns_pid, None)

    def exit_status(self, ns_pid: int, wait_s: float) -> int | None:
        """The wait status init reported for ``ns_pid`` (trusted: init runs no user code)."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                with contextlib.suppress(BlockingIOError):
                    while chunk := os.read(self.status_r, 65536):
                        self._pending += chunk
                *lines, self._pending = self._pending.split(b"\n")
                for line in lines:
                    pid, _, status = line.partition(b" ")
                    self._statuses[int(pid)] = int(status)
                if ns_pid in self._statuses:
                    return self._statuses[ns_pid]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def join(self) -> None:
        """Count one more member (sandboxes of one family may live in other threads)."""
        with self._lock:
            self._members += 1

    def release(self) -> None:
        """One member is gone; the last one takes the family down."""
        with self._lock:
            self._members -= 1
            last = self._members <= 0
        if last:
            self.teardown()

    def teardown(self) -> None:
        if self.init is not None:
            self.init.kill()  # pid 1 of the namespace: the kernel kills everything inside
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                ProcHandle(self.proc.pid).kill_tree()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self.lifeline_w, self.status_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.init is not None:
            self.init.close()
            self.init = None


@dataclass(eq=False)
class _Member:
    """One sandbox's worker process and its private pipes and cgroups."""

    family: _Family
    chan: socket.socket
    out_r: int
    err_r: int
    cgroups: Cgroups
    reader: _FrameReader
    host_workdir: str | None = None
    proc: ProcHandle | None = None
    ns_pid: int = 0
    workdir: str = ""
    violation: str = ""
    closed: bool = field(default=False)

    def __post_init__(self) -> None:
        os.set_blocking(self.out_r, False)
        os.set_blocking(self.err_r, False)

    def send(self, frame: dict[str, Any], timeout_s: float, fds: list[int] | None = None) -> None:
        self.chan.settimeout(max(timeout_s, 1.0))
        _child.send_frame(self.chan, frame, fds or ())

    def pump(
        self,
        deadline: float,
        handle: Callable[[dict[str, Any]], bool],
        out: _Output | None = None,
        err: _Output | None = None,
        cpu_limit_s: float | None = None,
    ) -> Outcome:
        """Move messages and output until ``handle`` says done, time runs out, the CPU
        budget is spent or the channel closes."""
        streams = {self.out_r: out, self.err_r: err}
        cpu_start = self.proc.cpu_seconds() if self.proc and cpu_limit_s is not None else 0.0
        with selectors.DefaultSelector() as sel:
            sel.register(self.chan, selectors.EVENT_READ)
            for fd in streams:
                sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                spent = self.proc.cpu_seconds() - cpu_start if self.proc else 0.0
                if cpu_limit_s is not None and spent > cpu_limit_s:
                    return "cpu"
                for key, _ in sel.select(min(_TICK_S, left)):
                    if key.fileobj is self.chan:
                        try:
                            data = self.chan.recv(65536)
                        except OSError:
                            data = b""
                        if not data:
                            self._drain(streams)
                            return "eof"
                        try:
                            frames = self.reader.feed(data)
                        except _ProtocolError as exc:
                            self.violation = str(exc)
                            return "protocol"
                        if any([handle(frame) for frame in frames]):
                            self._drain(streams)
                            return "done"
                    else:
                        fd = int(key.fd)
                        if not self._read(fd, streams[fd]):
                            sel.unregister(fd)

    @staticmethod
    def _read(fd: int, sink: _Output | None) -> bool:
        """Read what is there; False at end of file."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if sink is not None and chunk:
            sink.add(chunk)
        return bool(chunk)

    def discard_output(self) -> None:
        self._drain({self.out_r: None, self.err_r: None})

    def _drain(self, streams: dict[int, _Output | None]) -> None:
        """Read what the worker wrote before its last message (it flushed first)."""
        for fd, sink in streams.items():
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 65536):
                    if sink is not None:
                        sink.add(chunk)

    def expect(self, op: str, deadline: float, diag: _Output | None = None) -> dict[str, Any]:
        """Wait for one message ``op`` (during start-up and forks)."""
        got: dict[str, Any] = {}

        def handle(frame: dict[str, Any]) -> bool:
            if frame.get("op") == "fatal":
                raise _StartError(str(frame.get("error")))
            if frame.get("op") == op and not got:
                got.update(frame)
            return bool(got)

        outcome = self.pump(deadline, handle, diag, diag)
        if outcome != "done":
            raise _StartError(f"no {op!r} message from the sandbox ({outcome})")
        return got

    def attach(self, hello: dict[str, Any], parent: int, deadline: float) -> None:
        """Find the worker in the host's process table, then put it in its cgroups.

        The candidate must be a child of init with the namespace pid it announced, so a
        lying worker can at worst misplace one of its own processes.
        """
        ns_pid = hello.get("pid")
        if not isinstance(ns_pid, int):
            raise _StartError("the worker did not say its pid")
        while self.proc is None:
            for pid in children_of(parent):
                if _inner_pid(pid) == ns_pid:
                    self.proc = ProcHandle(pid)
                    break
            else:
                if time.monotonic() > deadline:
                    raise _StartError(f"worker pid {ns_pid} not found under init")
                time.sleep(0.005)
        self.ns_pid = ns_pid
        self.family.forget_status(ns_pid)
        self.cgroups.add(self.proc.pid)
        self.workdir = str(hello.get("workdir", ""))

    def kill(self) -> None:
        self.cgroups.kill_all()
        if self.proc is not None:
            self.proc.kill_tree()

    def destroy(self) -> None:
        """Kill the worker and everything it started; free pipes, cgroups, work dir."""
        if self.closed:
            return
        self.closed = True
        self.kill()
        self.chan.close()
        for fd in (self.out_r, self.err_r):
            os.close(fd)
        self.cgroups.remove()
        if self.host_workdir is not None:
            shutil.rmtree(self.host_workdir, ignore_errors=True)
        if self.proc is not None:
            self.proc.close()
        self.family.release()


def _inner_pid(pid: int) -> int | None:
    """The pid of a process as seen inside its own (innermost) pid namespace."""
    nspid = read_status(pid).get("NSpid", "").split()
    return int(nspid[-1]) if nspid else None


def _tool_doc(fn: Callable[..., Any]) -> str:
    description = getattr(fn, "description", None)
    if isinstance(description, str):
        return description[:2000]
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return (inspect.getdoc(fn) or "")[:2000]
    return ""


def _check_tools(tools: Mapping[str, Callable[..., Any]] | None) -> dict[str, Callable[..., Any]]:
    checked: dict[str, Callable[..., Any]] = {}
    for name, fn in (tools or {}).items():
        if (
            not name.isidentifier()
            or keyword.iskeyword(name)
            or name.startswith("_")
            or name in _RESERVED_NAMES
        ):
            raise SandboxError(
                f"{name!r} cannot be a sandbox tool name",
                hint="use a plain identifier that is not a keyword, private, "
                f"or one of {sorted(_RESERVED_NAMES)}",
            )
        if not callable(fn):
            raise SandboxError(f"sandbox tool {name!r} is not callable", hint="pass a function")
        checked[name] = fn
    return checked


def _site_packages() -> list[str]:
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


# --------------------------------------------------------------------- start-up


def _launch(
    config: SandboxConfig, tools: dict[str, Callable[..., Any]]
) -> tuple[_Member, IsolationReport]:
    """Start a sandbox at the strongest isolation level allowed (see ``config.isolation``)."""
    levels: list[Literal["namespaces", "rlimits"]]
    levels = ["namespaces", "rlimits"] if config.isolation == "auto" else [config.isolation]
    failures: list[str] = []
    for level in levels:
        try:
            member = _spawn(config, tools, level)
        except _StartError as exc:
            failures.append(f"{level} level unavailable: {exc}")
            continue
        member.family.facts["failures"] = failures
        return member, _measure_or_destroy(member)
    raise SandboxError(
        "the code sandbox could not start: " + "; ".join(failures),
        hint="isolation='auto' falls back to rlimits when namespaces are refused; "
        "check that the Python interpreter can run and /proc is mounted",
    )


def _spawn(
    config: SandboxConfig,
    tools: dict[str, Callable[..., Any]],
    level: Literal["namespaces", "rlimits"],
) -> _Member:
    cgroups = Cgroups.create(config.memory_mb * _MIB, config.max_processes)
    rlimits = {"FSIZE": config.max_file_mb * _MIB, "NOFILE": config.max_open_files, "CORE": 0}
    if not cgroups.memory:
        rlimits["AS"] = config.memory_mb * _MIB
    if not cgroups.pids:
        rlimits["NPROC"] = config.max_processes
    chan, chan_child = socket.socketpair()
    lifeline_r, lifeline_w = os.pipe()
    status_r, status_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    child_fds = (chan_child.fileno(), lifeline_r, status_w)
    argv = [sys.executable, "-I", "-S", "-B", "-X", "utf8", str(_CHILD_SCRIPT)]
    try:
        proc = subprocess.Popen(
            [*argv, *map(str, child_fds)],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            pass_fds=child_fds,
            env=dict(_BASE_ENV),
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        for fd in (lifeline_w, status_r, out_r, err_r):
            os.close(fd)
        chan.close()
        cgroups.remove()
        raise _StartError(f"cannot start {sys.executable}: {exc}") from None
    finally:
        chan_child.close()
        for fd in (lifeline_r, status_w, out_w, err_w):
            os.close(fd)
    family = _Family(proc, lifeline_w, status_r)
    family.private_tmp = level == "namespaces"
    family.join()
    member = _Member(
        family, chan, out_r, err_r, cgroups, _FrameReader(config.max_message_mb * _MIB)
    )
    diag = _Output(4000)
    deadline = time.monotonic() + config.startup_timeout_s
    cfg = {
        "mode": level,
        "uid": config.uid,
        "gid": config.gid,
        "disk_mb": config.disk_mb,
        "rlimits": rlimits,
        "sys_path": _site_packages() if config.site_packages else [],
        "tools": {name: _tool_doc(fn) for name, fn in tools.items()},
        "max_value_chars": config.max_text_chars,
        "env": {**_BASE_ENV, **_CODE_ENV, **config.env},
    }
    try:
        member.send(cfg, config.startup_timeout_s)
        hello = member.expect("hello", deadline, diag)
        while not (kids := children_of(proc.pid)):
            if time.monotonic() > deadline:
                raise _StartError("init process not found")
            time.sleep(0.005)
        family.init = ProcHandle(kids[0])
        member.attach(hello, family.init.pid, deadline)
        if level == "rlimits":
            member.host_workdir = _own_tempdir(member.workdir)
        family.facts.update(
            sockets_blocked=hello.get("sockets_blocked") is True,
            unreachable=[str(p) for p in hello.get("unreachable", [])],
        )
        member.send({"op": "start"}, config.startup_timeout_s)
        member.expect("ready", deadline, diag)
    except (_StartError, OSError) as exc:
        member.destroy()
        detail = diag.text("stderr").strip()
        raise _StartError(f"{exc}" + (f" [stderr: {detail[-1500:]}]" if detail else "")) from None
    return member


def _own_tempdir(path: str) -> str | None:
    """The host-side work dir the worker made (only ever removed if it is really ours)."""
    real = os.path.realpath(path)
    prefix = os.path.join(os.path.realpath(tempfile.gettempdir()), "slmkit-sandbox-")
    return real if real.startswith(prefix) and os.path.isdir(real) else None


def _mount_table(pid: int) -> dict[str, tuple[str, set[str]]]:
    """Mount point -> (filesystem type, mount options) as the process sees them."""
    table: dict[str, tuple[str, set[str]]] = {}
    with open(f"/proc/{pid}/mountinfo") as fh:
        for line in fh:
            before, _, after = line.partition(" - ")
            fields = before.split()
            table[fields[4]] = (after.split()[0], set(fields[5].split(",")))
    return table


def _measure(member: _Member) -> IsolationReport:
    """Read, from outside, what isolation the worker actually has."""
    assert member.proc is not None
    pid = member.proc.pid
    family = member.family

    def separate(kind: str) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
        except OSError:
            return False

    status = read_status(pid)
    uid, gid = int(status["Uid"].split()[1]), int(status["Gid"].split()[1])
    mounts = _mount_table(pid)
    mount_ns, pid_ns, net_ns = separate("mnt"), separate("pid"), separate("net")
    writable = sorted(
        point
        for point, (_fs, options) in mounts.items()
        if "rw" in options and not any(point == m or point.startswith(m + "/") for m in _OWN_MOUNTS)
    )
    proc_fs = mounts.get("/proc", ("", set()))[0]
    proc: Literal["private", "hidden", "host"] = "host"
    if mount_ns and pid_ns:
        proc = "private" if proc_fs == "proc" else "hidden" if proc_fs == "tmpfs" else "host"
    in_cgroups = member.cgroups.contains(pid)
    names = {
        "FSIZE": "Max file size",
        "NOFILE": "Max open files",
        "CORE": "Max core file size",
        "AS": "Max address space",
        "NPROC": "Max processes",
    }
    limits = read_limits(pid)
    rlimits = {k: limits[v][1] for k, v in names.items() if limits[v][1] != "unlimited"}
    with open(f"/proc/{pid}/environ", "rb") as fh:
        env_keys = {item.split(b"=", 1)[0].decode() for item in fh.read().split(b"\0") if item}
    network: Literal["netns", "blocked-sockets", "open"] = "open"
    if net_ns:
        network = "netns"
    elif family.facts.get("sockets_blocked"):
        network = "blocked-sockets"
    report = IsolationReport(
        level="namespaces" if family.private_tmp else "rlimits",
        user_ns=separate("user"),
        pid_ns=pid_ns,
        net_ns=net_ns,
        mount_ns=mount_ns,
        ipc_ns=separate("ipc"),
        uts_ns=separate("uts"),
        rootfs_readonly=mount_ns and not writable,
        private_tmp=mount_ns and mounts.get("/tmp", ("", set()))[0] == "tmpfs",
        proc=proc,
        cgroup_memory=member.cgroups.memory and in_cgroups,
        cgroup_pids=member.cgroups.pids and in_cgroups,
        rlimits=rlimits,
        cpu_limit="per run: watched by the host"
        + (", and RLIMIT_CPU set per run (kernel)" if os.geteuid() == 0 else ""),
        uid=uid,
        gid=gid,
        capabilities=int(status.get("CapEff", "0"), 16) != 0,
        no_new_privs=status.get("NoNewPrivs", "0").strip() == "1",
        network=network,
        env_scrubbed=env_keys <= set(_BASE_ENV),
        workdir=member.workdir,
    )
    return _with_warnings(report, writable, _interfaces(pid) if net_ns else [], family.facts)


def _measure_or_destroy(member: _Member) -> IsolationReport:
    """Measure a fresh worker; one whose isolation cannot be read is not handed out."""
    try:
        return _measure(member)
    except (OSError, KeyError, ValueError) as exc:
        member.destroy()
        raise SandboxError(
            f"cannot read the sandbox's isolation from /proc: {exc}",
            hint="the host must be able to read /proc/PID of its own child processes",
        ) from None


def _interfaces(pid: int) -> list[str]:
    """Network interfaces other than loopback in the process's network namespace."""
    with open(f"/proc/{pid}/net/dev") as fh:
        names = [line.split(":")[0].strip() for line in fh.read().splitlines()[2:]]
    return [n for n in names if n != "lo"]


def _with_warnings(
    report: IsolationReport, writable: list[str], interfaces: list[str], facts: dict[str, Any]
) -> IsolationReport:
    """Spell out every gap, so nobody mistakes a fallback for the real thing."""
    warn: list[str] = list(facts.get("failures", []))
    if not report.pid_ns:
        warn.append("no pid namespace: the code can see host processes and their command lines")
    if report.uid == 0:
        warn.append("the code runs as root")
    elif report.uid == os.geteuid() and not report.pid_ns:
        warn.append(f"the code runs as the host's uid {report.uid}: it can signal host processes")
    if report.capabilities:
        warn.append("the code holds capabilities")
    if not report.no_new_privs:
        warn.append("no-new-privileges is not set: setuid programs could raise privileges")
    if report.network == "blocked-sockets":
        warn.append("network blocked only inside Python: a socket(2) call via ctypes gets through")
    elif report.network == "open":
        warn.append("the network is open")
    if interfaces:
        warn.append(f"the network namespace has interfaces: {', '.join(interfaces)}")
    if not report.mount_ns:
        warn.append(f"no private filesystem: the code can write wherever uid {report.uid} may")
    elif writable:
        warn.append(f"host mounts writable from the sandbox: {', '.join(writable)}")
    if not report.cgroup_memory:
        warn.append("memory limited by RLIMIT_AS (address space), not by a cgroup")
    if not report.cgroup_pids:
        shared = "" if report.user_ns else f", shared by all processes of uid {report.uid}"
        warn.append(f"process count limited by RLIMIT_NPROC, not by a cgroup{shared}")
    if not report.env_scrubbed:
        warn.append("the environment was not scrubbed")
    if facts.get("unreachable"):
        warn.append(
            f"not readable by uid {report.uid}: {', '.join(facts['unreachable'])}; "
            "imports from there fail"
        )
    return IsolationReport(**{**report.as_dict(), "warnings": tuple(warn)})


# ----------------------------------------------------------------------- the API

_LIVE: weakref.WeakSet[PythonSandbox] = weakref.WeakSet()


@atexit.register
def _close_live_sandboxes() -> None:
    for sandbox in list(_LIVE):
        sandbox.close()


class PythonSandbox:
    """A persistent Python interpreter that runs untrusted code, contained.

    ::

        with PythonSandbox(timeout_s=10, memory_mb=512, tools={"search": search}) as sb:
            r = sb.run("x = 2**10\\nprint(x)")      # r.stdout == "1024\\n"
            sb.run("print(x + 1)")                   # state persists between runs
            other = sb.fork()                        # an independent copy of the state
            sb.isolation.warnings                    # () when fully isolated

    :meth:`run` never raises because of the code: exceptions, timeouts, memory or CPU
    exhaustion and crashes come back in the :class:`SandboxResult`. When the sandbox
    was killed, its state is gone; with ``auto_restart`` (default) the next run starts
    a fresh one and says so (``restarted=True``), otherwise it reports the sandbox dead
    until :meth:`restart`. Host ``tools`` become plain functions inside the sandbox;
    each call crosses to the host as JSON and the result comes back as JSON (a failure
    is raised there as ``ToolCallError``). ``final_answer(x)`` records ``x`` and stops
    the run. One run at a time per sandbox (calls are serialised by a lock).
    """

    def __init__(
        self,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        *,
        config: SandboxConfig | None = None,
        **options: Any,
    ) -> None:
        base = config or SandboxConfig()
        if timeout_s is not None:
            options["timeout_s"] = timeout_s
        if memory_mb is not None:
            options["memory_mb"] = memory_mb
        try:
            self.config = SandboxConfig.model_validate({**base.model_dump(), **options})
        except ValidationError as exc:
            raise SandboxError(
                f"invalid sandbox options: {exc}", hint="see SandboxConfig for the fields"
            ) from None
        self._tools = _check_tools(tools)
        self._lock = threading.RLock()
        self._seq = 0
        self._closed = False
        self._member: _Member | None = None
        self._member, self._isolation = _launch(self.config, self._tools)
        _LIVE.add(self)

    @classmethod
    def _adopt(
        cls, parent: PythonSandbox, member: _Member, isolation: IsolationReport
    ) -> PythonSandbox:
        """A sandbox object around a worker that :meth:`fork` made."""
        clone = cls.__new__(cls)
        clone.config = parent.config
        clone._tools = parent._tools
        clone._lock = threading.RLock()
        clone._seq = 0
        clone._closed = False
        clone._member = member
        clone._isolation = isolation
        _LIVE.add(clone)
        return clone

    # -- properties

    @property
    def isolation(self) -> IsolationReport:
        """What is in force around the code (measured when the worker started)."""
        return self._isolation

    @property
    def alive(self) -> bool:
        """Whether the sandbox process is running (False after a kill, until restart)."""
        return (
            self._member is not None
            and self._member.proc is not None
            and (self._member.proc.alive())
        )

    # -- running code

    def run(self, code: str, *, timeout_s: float | None = None) -> SandboxResult:
        """Execute ``code`` in the sandbox's persistent namespace and report the outcome."""
        with self._lock:
            self._check_open()
            restarted = False
            if self._member is None:
                if not self.config.auto_restart:
                    return self._dead_result()
                self._member, self._isolation = _launch(self.config, self._tools)
                restarted = True
            if timeout_s is not None and timeout_s <= 0:
                raise SandboxError(f"timeout_s must be > 0, got {timeout_s}", hint="omit it")
            return self._run(self._member, code, timeout_s or self.config.timeout_s, restarted)

    def _run(self, member: _Member, code: str, timeout_s: float, restarted: bool) -> SandboxResult:
        assert member.proc is not None
        cpu_limit = self.config.cpu_time_s or timeout_s
        self._seq += 1
        seq = self._seq
        if os.geteuid() == 0:
            # Kernel backstop: SIGXCPU a second after the budget (the host's watch
            # normally acts first), SIGKILL a second later; children inherit it.
            soft = math.ceil(member.proc.cpu_seconds() + cpu_limit) + 1
            with contextlib.suppress(OSError):
                resource.prlimit(member.proc.pid, resource.RLIMIT_CPU, (soft, soft + 1))
        oom_before = member.cgroups.oom_kills()
        out = _Output(self.config.max_output_bytes)
        err = _Output(self.config.max_output_bytes)
        calls: list[str] = []
        done: dict[str, Any] = {}

        def handle(frame: dict[str, Any]) -> bool:
            if frame.get("op") == "done" and frame.get("seq") == seq:
                done.update(frame)
                return True
            if frame.get("op") == "call":
                calls.append(str(frame.get("name"))[:100])
                self._answer_call(member, frame, deadline)
            return False  # anything else is stale or noise: ignored

        member.discard_output()  # what background work printed between runs is not ours
        start = time.monotonic()
        deadline = start + timeout_s
        outcome: Outcome
        try:
            member.send({"op": "exec", "code": code, "seq": seq}, timeout_s)
            outcome = member.pump(deadline, handle, out, err, cpu_limit)
        except OSError:
            outcome = "eof"
        duration = time.monotonic() - start
        if outcome == "done":
            error = _text(done.get("error"), self.config.max_text_chars)
            killed = False
        else:
            error = self._kill_reason(member, outcome, oom_before, timeout_s, cpu_limit)
            killed = True
            self._member = None
            member.destroy()
        finished = outcome == "done" and done.get("finished") is True
        return SandboxResult(
            stdout=out.text("stdout"),
            stderr=err.text("stderr"),
            error=error,
            timed_out=outcome in ("timeout", "cpu"),
            killed=killed,
            duration_s=duration,
            isolation=self._isolation,
            value=_text(done.get("value"), self.config.max_text_chars),
            final_answer=done.get("final_answer") if finished else None,
            finished=finished,
            restarted=restarted,
            truncated=bool(out.dropped or err.dropped),
            tool_calls=tuple(calls),
        )

    def _answer_call(self, member: _Member, frame: dict[str, Any], deadline: float) -> None:
        """Run one host tool for the sandbox: registered names only, JSON both ways."""
        name, args, kwargs = frame.get("name"), frame.get("args"), frame.get("kwargs")
        fn = self._tools.get(name) if isinstance(name, str) else None
        reply: dict[str, Any]
        if fn is None:
            reply = {"op": "raise", "error": f"no host tool named {str(name)[:100]!r}"}
        elif not isinstance(args, list) or not isinstance(kwargs, dict):
            reply = {"op": "raise", "error": "malformed call"}
        else:
            try:
                reply = {"op": "return", "value": fn(*args, **kwargs)}
            except Exception as exc:  # a failing tool is the code's problem, not the host's
                reply = {"op": "raise", "error": f"{type(exc).__name__}: {exc}"}
        left = deadline - time.monotonic()
        try:
            member.send(reply, left)
        except (TypeError, ValueError) as exc:
            member.send({"op": "raise", "error": f"result is not JSON-serializable: {exc}"}, left)

    def _kill_reason(
        self, member: _Member, outcome: Outcome, oom_before: int, timeout_s: float, cpu_s: float
    ) -> str:
        """Kill what is left of the worker and say, as precisely as we know, why it ended."""
        assert member.proc is not None
        exiting = time.monotonic() + 1.0  # the channel closes a moment before exit ends
        while member.proc.alive() and outcome == "eof" and time.monotonic() < exiting:
            time.sleep(0.005)
        was_alive = member.proc.alive()
        member.kill()
        lost = "the sandbox was killed and its state is lost"
        if outcome == "timeout":
            return f"TimeoutError: the run exceeded its {timeout_s:g} s wall-clock limit; {lost}"
        if outcome == "cpu":
            return f"TimeoutError: the run used more than {cpu_s:g} s of CPU time; {lost}"
        if outcome == "protocol":
            return (
                f"SandboxError: the sandbox broke the message protocol ({member.violation}); {lost}"
            )
        if member.cgroups.oom_kills() > oom_before:
            return (
                f"MemoryError: the sandbox exceeded its {self.config.memory_mb} MB memory "
                "limit and the kernel killed it; its state is lost"
            )
        if was_alive:
            return f"SandboxError: the sandbox closed its channel to the host; {lost}"
        status = member.family.exit_status(member.ns_pid, wait_s=1.0)
        if status is None:
            return "SandboxError: the sandbox process died; its state is lost"
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            return f"SandboxError: the sandbox process exited with code {code}; its state is lost"
        sig = signal.Signals(-code)
        if sig == signal.SIGXCPU:
            return f"TimeoutError: the CPU-time limit ({cpu_s:g} s) was reached; {lost}"
        return f"SandboxError: the sandbox process was killed by {sig.name}; its state is lost"

    def _dead_result(self) -> SandboxResult:
        return SandboxResult(
            stdout="",
            stderr="",
            error="SandboxError: the sandbox died in an earlier run; call restart() "
            "(or use auto_restart=True)",
            timed_out=False,
            killed=False,
            duration_s=0.0,
            isolation=self._isolation,
        )

    # -- fork, restart, close

    def fork(self) -> PythonSandbox:
        """An independent sandbox whose state starts as a copy of this one's.

        The worker process is forked, so every object (open files included) is copied
        as it is; the copy gets its own channel, output pipes, cgroups, limits and a copy
        of the work dir. It shares this sandbox's namespaces (see docs/sandbox.md).
        """
        with self._lock:
            self._check_open()
            if self._member is None:
                raise SandboxError("cannot fork: the sandbox died", hint="call restart() first")
            member, isolation = self._fork_member(self._member)
            return PythonSandbox._adopt(self, member, isolation)

    def _fork_member(self, origin: _Member) -> tuple[_Member, IsolationReport]:
        config, family = self.config, origin.family
        assert family.init is not None
        cgroups = Cgroups.create(config.memory_mb * _MIB, config.max_processes)
        host_workdir: str | None = None
        if family.private_tmp:
            workdir = f"/tmp/work-{family.next_id()}"
        else:
            workdir = host_workdir = tempfile.mkdtemp(prefix="slmkit-sandbox-")
            if os.geteuid() == 0:
                os.chown(workdir, config.uid, config.gid)
        chan, chan_child = socket.socketpair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        family.join()
        member = _Member(
            family,
            chan,
            out_r,
            err_r,
            cgroups,
            _FrameReader(config.max_message_mb * _MIB),
            host_workdir=host_workdir,
        )
        deadline = time.monotonic() + config.startup_timeout_s
        try:
            try:
                fds = [chan_child.fileno(), out_w, err_w]
                origin.send({"op": "fork", "workdir": workdir}, config.startup_timeout_s, fds)
            finally:
                chan_child.close()
                os.close(out_w)
                os.close(err_w)
            origin.expect("forked", deadline)
            member.attach(member.expect("hello", deadline), family.init.pid, deadline)
            member.send({"op": "start"}, config.startup_timeout_s)
            member.expect("ready", deadline)
        except (_StartError, OSError) as exc:
            member.destroy()
            raise SandboxError(
                f"fork failed: {exc}", hint="the original sandbox is unchanged; try again"
            ) from None
        return member, _measure_or_destroy(member)

    def restart(self) -> None:
        """Replace the sandbox process by a fresh one (empty state, new work dir)."""
        with self._lock:
            self._check_open()
            self._drop_member()
            self._member, self._isolation = _launch(self.config, self._tools)

    def close(self) -> None:
        """Kill the sandbox's processes and remove its cgroups and work dir (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_member()
            _LIVE.discard(self)

    def _drop_member(self) -> None:
        member, self._member = self._member, None
        if member is not None:
            member.destroy()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed", hint="create a new PythonSandbox")

    def __enter__(self) -> PythonSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "alive" if self.alive else "dead"
        return f"PythonSandbox({state}, {self._isolation.summary()})"


def _text(value: object, limit: int) -> str | None:
    """A string field from the sandbox, capped and made safely encodable."""
    if not isinstance(value, str):
        return None
    return value[-limit - 200 :].encode("utf-8", "replace").decode("utf-8")
