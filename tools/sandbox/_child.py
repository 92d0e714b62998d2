"""The sandboxed side of :class:`~slmkit.tools.sandbox.PythonSandbox` (standard library only).

The host starts this file as ``python -I -S -B -X utf8 _child.py CHAN LIFELINE STATUS``.
It must never import slmkit: the sandboxed interpreter sees the standard library (and,
if the host asks, site-packages appended to ``sys.path`` later) and nothing else. The host
imports it too, for the frame format (:func:`send_frame`, :data:`FRAME_HEADER`).

One interpreter start, three roles, all made by ``fork`` so start-up stays cheap:

* **supervisor** (the process the host started): enters the new namespaces (a new pid
  namespace only applies to children, hence the fork), then watches the host's lifeline
  pipe and kills the init process when the host disappears, so nothing outlives it;
* **init**: pid 1 of the new pid namespace (a child subreaper without one). It builds the
  private filesystem view, forks the first worker, then only reaps processes and writes
  each exit status to the host's status pipe. It never runs user code, so what it
  reports can be trusted;
* **worker**: drops every privilege, then executes user code in a persistent globals
  dict, forwarding tool calls to the host. Forking the sandbox is an ``os.fork()`` of a
  worker, done twice so the copy is re-parented to init and reaped there.

Once user code has run, a worker can be made to do anything its privileges allow, so
the host trusts nothing it says: every limit is enforced from outside (namespaces,
cgroups, rlimits, the uid, the wall clock, output caps) and every message is checked.
"""

from __future__ import annotations

import _socket
import ast
import builtins
import contextlib
import ctypes
import errno
import json
import linecache
import os
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

FRAME_HEADER = struct.Struct(">I")
"""Every message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON."""

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_PR_CAPBSET_DROP = 24

_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new-style syscall)
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(ret: int, what: str) -> None:
    """Turn a libc ``-1`` into an OSError that names the call."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int) -> None:
    zero = ctypes.c_ulong(0)
    _check(_libc.prctl(option, ctypes.c_ulong(arg), zero, zero, zero), f"prctl({option})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


# --------------------------------------------------------------------------- frames


def send_frame(sock: socket.socket, obj: object, fds: Sequence[int] = ()) -> None:
    """Send one message (and optionally file descriptors, attached to its first byte)."""
    # ASCII escapes keep lone surrogates (legal in Python strings) encodable.
    body = json.dumps(obj, separators=(",", ":")).encode("ascii")
    data = FRAME_HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, size: int, fds: list[int] | None) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        if fds is not None:
            data, got, _flags, _addr = socket.recv_fds(sock, size - len(buf), 4)
            fds.extend(got)
        else:
            data = sock.recv(size - len(buf))
        if not data:
            raise EOFError("the host closed the channel")
        buf += data
    return bytes(buf)


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Block for one message from the host; descriptors arrive with the header."""
    fds: list[int] = []
    (size,) = FRAME_HEADER.unpack(_recv_exact(sock, FRAME_HEADER.size, fds))
    msg = json.loads(_recv_exact(sock, size, None))
    if not isinstance(msg, dict):
        raise ValueError("a frame must hold a JSON object")
    return msg, fds


# --------------------------------------------------------------------- namespaces


def _enter_namespaces(mode: str) -> dict[str, bool]:
    """Unshare the strongest namespace set the kernel grants; report what was entered.

    As root, plain namespaces (the worker drops to an unprivileged uid later). Without
    root, a user namespace makes the others possible. ``mode == "rlimits"`` skips both.
    """
    none = {"user": False, "pid": False, "net": False, "mount": False}
    if mode == "rlimits":
        return none
    flag_sets = [_NAMESPACES | CLONE_NEWCGROUP, _NAMESPACES]
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        for flags in flag_sets:
            if _libc.unshare(ctypes.c_int(flags)) == 0:
                return {"user": False, "pid": True, "net": True, "mount": True}
    # Root that may not unshare must not try a user namespace either: it could map only
    # uid 0, and a capability-less uid 0 still owns the host's device nodes.
    for flags in flag_sets if uid != 0 else []:
        if _libc.unshare(ctypes.c_int(flags | CLONE_NEWUSER)) == 0:
            # Map only our own ids: an unprivileged process may map nothing else.
            for name, text in (
                ("setgroups", "deny"),
                ("uid_map", f"{uid} {uid} 1"),
                ("gid_map", f"{gid} {gid} 1"),
            ):
                with open(f"/proc/self/{name}", "w") as fh:
                    fh.write(text)
            return {"user": True, "pid": True, "net": True, "mount": True}
    if mode == "namespaces":
        err = ctypes.get_errno()
        raise OSError(err, f"cannot create namespaces: {os.strerror(err)}")
    return none


def _traversable(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _blocked_dirs(paths: Sequence[str], uid: int, gid: int) -> dict[str, set[str]]:
    """For each needed path, the first ancestor the sandbox uid cannot enter, and the
    child of it on the way (``{"/root": {".pyenv"}}`` for a Python under ``/root``)."""
    blocked: dict[str, set[str]] = {}
    for path in paths:
        parts = [p for p in os.path.realpath(path).split("/") if p]
        current = "/"
        for part in parts:
            nxt = os.path.join(current, part)
            if not os.path.lexists(nxt):
                break
            if not _traversable(current, uid, gid):
                blocked.setdefault(current, set()).add(part)
                break
            current = nxt
    return blocked


def _expose_paths(paths: Sequence[str], uid: int, gid: int) -> list[str]:
    """Make the interpreter reachable for the sandbox uid without touching host modes.

    A Python installed under a private home (``/root`` is 0700) would be unreadable
    after the privilege drop. In the private mount namespace we cover such a directory
    with an empty tmpfs (which also hides the rest of that home) and bind back only the
    entries on the way to the interpreter. Returns the paths still unreachable.
    """
    for _ in range(8):
        blocked = _blocked_dirs(paths, uid, gid)
        if not blocked:
            return []
        for directory, children in blocked.items():
            keep = {c: os.open(os.path.join(directory, c), os.O_PATH) for c in children}
            _mount("tmpfs", directory, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=755")
            for child, fd in keep.items():
                target = os.path.join(directory, child)
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.mkdir(target)
                else:
                    open(target, "x").close()
                _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
                os.close(fd)
    return sorted(_blocked_dirs(paths, uid, gid))


def _needed_paths(cfg: dict[str, Any]) -> list[str]:
    """What the worker must still read after the privilege drop: the interpreter and
    every import root."""
    return [p for p in (*sys.path, *cfg["sys_path"], sys.executable) if p]


def _setup_mounts(cfg: dict[str, Any], ns: dict[str, bool]) -> list[str]:
    """Build the private filesystem view: everything read-only, fresh tmpfs for /tmp,
    /dev/shm and /run (host daemons' sockets live there), a /proc of our pid namespace.

    Propagation is made private first, or the new mounts would show up on the host.
    Returns the paths the sandbox uid still cannot reach. Whether the read-only remount
    took (it needs ``mount_setattr``, Linux 5.12) is measured by the host.
    """
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    unreachable: list[str] = []
    if not ns["user"] and os.geteuid() == 0:
        unreachable = _expose_paths(_needed_paths(cfg), cfg["uid"], cfg["gid"])
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    _libc.syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(_AT_FDCWD),
        b"/",
        ctypes.c_uint(_AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    flags = _MS_NOSUID | _MS_NODEV
    _mount("tmpfs", "/tmp", "tmpfs", flags, f"size={cfg['disk_mb']}m,mode=1777")
    for target, options in (("/dev/shm", "size=64m,mode=1777"), ("/run", "size=1m,mode=755")):
        if os.path.isdir(target):
            _mount("tmpfs", target, "tmpfs", flags, options)
    try:
        _mount("proc", "/proc", "proc", flags | _MS_NOEXEC)
    except OSError:
        # A /proc of the host's pid namespace would show the host's processes: hide it.
        _mount("tmpfs", "/proc", "tmpfs", flags | _MS_NOEXEC, "size=1m,mode=555")
    return unreachable


# ------------------------------------------------------------------------- roles


def main(argv: Sequence[str]) -> NoReturn:
    """Entry point of the process the host starts: read the config, become the roles."""
    chan_fd, lifeline_fd, status_fd = (int(a) for a in argv[1:4])
    chan = socket.socket(fileno=chan_fd)
    cfg, _ = recv_frame(chan)
    try:
        ns = _enter_namespaces(cfg["mode"])
    except OSError as exc:
        _fatal(chan, f"namespaces: {exc}")
    supervisor = os.getpid()
    init_pid = os.fork()
    if init_pid == 0:
        _only(_run_init, cfg, ns, chan, supervisor, lifeline_fd, status_fd)
    chan.close()
    os.close(status_fd)
    _to_devnull()
    _supervise(init_pid, lifeline_fd)


def _only(role: Callable[..., Any], *args: Any) -> NoReturn:
    """Run a forked role to its end: an exception must never unwind into the code of
    the role that forked it (a failed worker would go on as a second supervisor)."""
    try:
        role(*args)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


def _fatal(chan: socket.socket, message: str) -> NoReturn:
    try:
        send_frame(chan, {"op": "fatal", "error": message})
    finally:
        os._exit(2)


def _to_devnull() -> None:
    """Let go of the worker's stdout/stderr pipes, so only workers hold them."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _supervise(init_pid: int, lifeline_fd: int) -> NoReturn:
    """Wait for init to end; if the host's end of the lifeline closes first (the host
    died, even by SIGKILL), kill init, which takes the whole pid namespace with it."""
    while True:
        ready, _, _ = select.select([lifeline_fd], [], [], 0.2)
        if ready:
            os.kill(init_pid, signal.SIGKILL)
            os.waitpid(init_pid, 0)
            os._exit(0)
        pid, _status = os.waitpid(init_pid, os.WNOHANG)
        if pid:
            os._exit(0)


def _run_init(
    cfg: dict[str, Any],
    ns: dict[str, bool],
    chan: socket.socket,
    supervisor: int,
    lifeline_fd: int,
    status_fd: int,
) -> NoReturn:
    """Init: die with the supervisor, build the mounts, fork the worker, then reap."""
    os.close(lifeline_fd)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() not in (0, supervisor):  # the supervisor died before prctl
        os._exit(1)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # Where workers share init's uid (user namespace mode), they must not be able to
    # stop it: as pid 1 it only gets signals it handles (so no handler at all), and a
    # non-dumpable process cannot be ptraced or have its /proc files read.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _prctl(_PR_SET_DUMPABLE, 0)
    unreachable: list[str] = []
    if ns["mount"]:
        try:
            unreachable = _setup_mounts(cfg, ns)
            socket.sethostname("sandbox")
        except OSError as exc:
            _fatal(chan, f"mounts: {exc}")
    worker = os.fork()
    if worker == 0:
        os.close(status_fd)
        _only(_start_worker, cfg, ns, unreachable, chan)
    chan.close()
    _to_devnull()
    os.set_blocking(status_fd, False)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        # Best effort: if the host is not reading (pipe full) or gone, drop the report.
        with contextlib.suppress(OSError):
            os.write(status_fd, f"{pid} {status}\n".encode())


def _start_worker(
    cfg: dict[str, Any], ns: dict[str, bool], unreachable: list[str], chan: socket.socket
) -> NoReturn:
    """First worker: own session, its work dir, rlimits, then drop every privilege."""
    os.setsid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    uid, gid = cfg["uid"], cfg["gid"]
    drop_uid = os.geteuid() == 0 and not ns["user"]
    if ns["mount"]:
        workdir = "/tmp/work"
        os.mkdir(workdir, 0o700)
    else:
        workdir = tempfile.mkdtemp(prefix="slmkit-sandbox-")
        unreachable = sorted(_blocked_dirs(_needed_paths(cfg), uid, gid)) if drop_uid else []
        if unreachable:
            _preload()
    if drop_uid:
        os.chown(workdir, uid, gid)
    for name, value in cfg["rlimits"].items():
        _set_rlimit(getattr(resource, f"RLIMIT_{name}"), value)
    if drop_uid:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # leaving euid 0 clears every capability
    elif ns["user"]:
        _drop_capabilities()
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries and file caps cannot raise us again
    # Init's (and the uid change's) non-dumpable flag would hide our /proc entries from
    # a host that is not root, and the host measures the isolation there.
    _prctl(_PR_SET_DUMPABLE, 1)
    block_net = not ns["net"]
    worker = _Worker(cfg, chan, private_tmp=ns["mount"])
    worker.enter_workdir(workdir)
    if block_net:
        _block_sockets()
    worker.handshake({"workdir": workdir, "unreachable": unreachable, "sockets_blocked": block_net})
    worker.send({"op": "ready"})
    worker.serve()


_PRELOAD = [
    "encodings.idna",
    "json",
    "re",
    "math",
    "cmath",
    "random",
    "statistics",
    "decimal",
    "fractions",
    "collections",
    "itertools",
    "functools",
    "operator",
    "datetime",
    "time",
    "string",
    "textwrap",
    "heapq",
    "bisect",
    "copy",
    "dataclasses",
    "typing",
    "csv",
    "io",
    "pathlib",
    "hashlib",
    "base64",
    "struct",
    "pprint",
    "enum",
    "unicodedata",
]


def _preload() -> None:
    """Without a private mount namespace, an interpreter the sandbox uid cannot read
    (say, under a 0700 /root) can still not be made readable: import the common
    standard modules while we still can, so everyday code keeps working."""
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)


def _set_rlimit(which: int, value: int) -> None:
    """Set soft and hard limit; never above a hard limit we could not raise anyway."""
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and os.geteuid() != 0:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _drop_capabilities() -> None:
    """Drop the capabilities a user namespace granted (we keep our uid: only one is
    mapped), the bounding set first so nothing can be regained through exec."""
    last_cap = 40
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last_cap = int(fh.read())
    except OSError:
        pass
    for cap in range(last_cap + 1):
        _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


_RealSocket = socket.socket


def _block_sockets() -> None:
    """Without a network namespace: refuse new sockets at the Python level.

    This is a speed bump, not a wall (ctypes can call socket(2)); the isolation report
    says so. Socket pairs stay usable since multiprocessing needs them and they reach
    nothing outside.
    """

    class NoNetworkSocket(_RealSocket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise PermissionError(errno.EACCES, "network access is disabled in this sandbox")

    def socketpair(
        family: int | None = None, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_UNIX if family is None else family
        a, b = _socket.socketpair(family, type, proto)
        return (
            _RealSocket(family, type, proto, a.detach()),
            _RealSocket(family, type, proto, b.detach()),
        )

    socket.socket = NoNetworkSocket  # type: ignore[misc]
    socket.socketpair = socketpair


# ------------------------------------------------------------------------ worker


class _FinalAnswer(BaseException):
    """Raised by ``final_answer()`` to stop the cell; a BaseException so that a bare
    ``except Exception`` in user code does not swallow it."""


def _answer_text(value: Any) -> str:
    """How a value JSON cannot hold is handed in: a function or class defined in a cell
    as its source code (``final_answer(solve)`` hands in the solution), else ``str``."""
    if isinstance(value, type) or hasattr(value, "__code__"):
        try:
            import inspect

            return inspect.getsource(value)
        except (ImportError, OSError, TypeError):
            pass
    return str(value)


class ToolCallError(Exception):
    """A host tool failed; the message is the host's error."""


_UNSET: Any = object()


class _Worker:
    """Executes cells in one persistent namespace and talks to the host."""

    def __init__(self, cfg: dict[str, Any], chan: socket.socket, *, private_tmp: bool) -> None:
        self.chan = chan
        self.private_tmp = private_tmp
        self.pid = os.getpid()
        self.cells = 0
        self.max_chars: int = cfg["max_value_chars"]
        self.final: Any = _UNSET
        self.globals: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "final_answer": self._final_answer,
            "ToolCallError": ToolCallError,
        }
        for name, doc in cfg["tools"].items():
            self.globals[name] = self._tool(name, doc)
        sys.path.extend(cfg["sys_path"])
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        os.environ.clear()
        os.environ.update(cfg["env"])

    def enter_workdir(self, workdir: str) -> None:
        os.chdir(workdir)
        os.environ["HOME"] = workdir
        os.environ["TMPDIR"] = "/tmp" if self.private_tmp else workdir

    def send(self, obj: dict[str, Any]) -> None:
        send_frame(self.chan, obj)

    def handshake(self, facts: dict[str, Any]) -> None:
        """Say who we are, then wait until the host has put us in our cgroups."""
        self.send({"op": "hello", "pid": os.getpid(), **facts})
        msg, fds = recv_frame(self.chan)
        _close_all(fds)
        if msg.get("op") != "start":
            os._exit(3)

    def serve(self) -> NoReturn:
        while True:
            try:
                msg, fds = recv_frame(self.chan)
            except (EOFError, OSError, ValueError):
                os._exit(0)
            op = msg.get("op")
            if op == "exec":
                _close_all(fds)
                self.send(self.execute(str(msg["code"]), msg["seq"]))
            elif op == "fork" and len(fds) == 3:
                self.fork(fds, str(msg["workdir"]))
            else:
                _close_all(fds)
                self.send({"op": "bad-request", "got": str(op)})

    # -- running a cell

    def execute(self, code: str, seq: int) -> dict[str, Any]:
        """Run one cell like a notebook: the value of a final expression is returned."""
        self.cells += 1
        self.final = _UNSET
        filename = f"<cell-{self.cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        error = value = None
        try:
            tree = ast.parse(code, filename, "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), self.globals)
            if isinstance(last, ast.Expr):
                result = eval(compile(ast.Expression(last.value), filename, "eval"), self.globals)
                if result is not None:
                    value = _tail(repr(result), self.max_chars)
        except _FinalAnswer:
            pass
        except BaseException as exc:  # user code may raise anything, SystemExit included
            error = self._format_error(exc)
        finally:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                try:
                    if stream is not None:
                        stream.flush()
                except Exception:  # a stream the user replaced may be broken
                    pass
            if os.getpid() != self.pid:
                os._exit(0)  # a fork made by user code must never touch the channel
        finished = self.final is not _UNSET
        return {
            "op": "done",
            "seq": seq,
            "error": error,
            "value": value,
            "finished": finished,
            "final_answer": self.final if finished else None,
        }

    def _format_error(self, exc: BaseException) -> str:
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
            tb = tb.tb_next  # hide the runner's frames (all of them for a SyntaxError)
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return _tail(text.rstrip(), self.max_chars)

    def _final_answer(self, answer: Any) -> NoReturn:
        """Record the task's answer and stop the cell (a function's answer is its code)."""
        try:
            self.final = json.loads(json.dumps(answer, default=_answer_text))
        except (TypeError, ValueError):
            self.final = str(answer)
        raise _FinalAnswer

    def _tool(self, name: str, doc: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call_tool(name, list(args), kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = doc
        return call

    def call_tool(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Send one call to the host and wait for its JSON result."""
        if os.getpid() != self.pid or threading.current_thread() is not threading.main_thread():
            raise RuntimeError("host tools can only be called from the sandbox's main thread")
        try:
            self.send({"op": "call", "name": name, "args": args, "kwargs": kwargs})
        except (TypeError, ValueError) as exc:
            raise TypeError(f"arguments of {name}() must be JSON-serializable: {exc}") from None
        reply, fds = recv_frame(self.chan)
        _close_all(fds)
        if reply.get("op") == "return":
            return reply.get("value")
        raise ToolCallError(f"{name}() failed on the host: {reply.get('error')}")

    # -- forking the sandbox

    def fork(self, fds: list[int], workdir: str) -> None:
        """Copy this process (its whole state) into a new, independent sandbox.

        The copy is double-forked so init adopts and reaps it, gets its own channel and
        output pipes (passed by the host), its own session and a copy of the work dir.
        """
        try:
            middle = os.fork()
        except OSError as exc:  # at the process limit, say
            _close_all(fds)
            self.send({"op": "fatal", "error": f"fork: {exc}"})
            return
        if middle == 0:
            try:
                copy = os.fork()
            except BaseException:
                os._exit(1)
            if copy != 0:
                os._exit(0)
            try:
                self._become_copy(fds, workdir)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            return  # the copy carries on serving, on its own channel
        _close_all(fds)
        _pid, status = os.waitpid(middle, 0)
        self.send({"op": "forked"} if status == 0 else {"op": "fatal", "error": "fork failed"})

    def _become_copy(self, fds: list[int], workdir: str) -> None:
        chan_fd, out_fd, err_fd = fds
        os.setsid()
        self.chan.close()
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        self.chan = _RealSocket(fileno=chan_fd)
        self.pid = os.getpid()
        source = os.getcwd()
        self.handshake({"workdir": workdir})
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        shutil.copytree(source, workdir, symlinks=True, dirs_exist_ok=True)
        self.enter_workdir(workdir)
        self.send({"op": "ready"})


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


def _tail(text: str, limit: int) -> str:
    """Keep the end of a long text (where a traceback's point is)."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]


if __name__ == "__main__":
    main(sys.argv)
