"""Host side of the sandbox's processes: the message protocol, the worker, its family.

A sandbox is a *member* (one worker process with its own channel, output pipes and
cgroups) of a *family* (the supervisor, init and namespaces that the worker and its forks
share). Everything the worker sends is size-checked and parsed here; the wall clock, the
CPU budget and the output caps are enforced here, never by the sandboxed process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from slmkit.tools.sandbox import _child
from slmkit.tools.sandbox._cgroups import Cgroups
from slmkit.tools.sandbox._linux import ProcHandle, children_of, read_status

__all__ = [
    "BASE_ENV",
    "MIB",
    "Family",
    "FrameReader",
    "Member",
    "Outcome",
    "Output",
    "ProtocolError",
    "StartError",
]

MIB = 1 << 20
TICK_S = 0.05
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
"""The whole environment of a sandbox process (anything else means it was not scrubbed)."""

Outcome = Literal["done", "timeout", "cpu", "eof", "protocol"]


class ProtocolError(Exception):
    """The sandboxed process sent something that is not a valid message."""


class StartError(Exception):
    """A sandbox (or a fork of one) did not come up; the message says where it stopped."""


class FrameReader:
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
                raise ProtocolError(f"a message of {size} bytes exceeds the {self.limit} limit")
            if len(self.buf) < header.size + size:
                break
            body = bytes(self.buf[header.size : header.size + size])
            del self.buf[: header.size + size]
            try:
                frame = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"a message is not JSON: {exc}") from None
            if not isinstance(frame, dict):
                raise ProtocolError("a message is not a JSON object")
            frames.append(frame)
        return frames


class Output:
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


class Family:
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
class Member:
    """One sandbox's worker process and its private pipes and cgroups."""

    family: Family
    chan: socket.socket
    out_r: int
    err_r: int
    cgroups: Cgroups
    reader: FrameReader
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
        out: Output | None = None,
        err: Output | None = None,
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
                for key, _ in sel.select(min(TICK_S, left)):
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
                        except ProtocolError as exc:
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
    def _read(fd: int, sink: Output | None) -> bool:
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

    def _drain(self, streams: dict[int, Output | None]) -> None:
        """Read what the worker wrote before its last message (it flushed first)."""
        for fd, sink in streams.items():
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(fd, 65536):
                    if sink is not None:
                        sink.add(chunk)

    def expect(self, op: str, deadline: float, diag: Output | None = None) -> dict[str, Any]:
        """Wait for one message ``op`` (during start-up and forks)."""
        got: dict[str, Any] = {}

        def handle(frame: dict[str, Any]) -> bool:
            if frame.get("op") == "fatal":
                raise StartError(str(frame.get("error")))
            if frame.get("op") == op and not got:
                got.update(frame)
            return bool(got)

        outcome = self.pump(deadline, handle, diag, diag)
        if outcome != "done":
            raise StartError(f"no {op!r} message from the sandbox ({outcome})")
        return got

    def attach(self, hello: dict[str, Any], parent: int, deadline: float) -> None:
        """Find the worker in the host's process table, then put it in its cgroups.

        The candidate must be a child of init with the namespace pid it announced, so a
        lying worker can at worst misplace one of its own processes.
        """
        ns_pid = hello.get("pid")
        if not isinstance(ns_pid, int):
            raise StartError("the worker did not say its pid")
        while self.proc is None:
            for pid in children_of(parent):
                if inner_pid(pid) == ns_pid:
                    self.proc = ProcHandle(pid)
                    break
            else:
                if time.monotonic() > deadline:
                    raise StartError(f"worker pid {ns_pid} not found under init")
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

    def kill_reason(
        self, outcome: Outcome, oom_before: int, timeout_s: float, cpu_s: float, memory_mb: int
    ) -> str:
        """Kill what is left of the worker and say, as precisely as we know, why it ended."""
        assert self.proc is not None
        exiting = time.monotonic() + 1.0  # the channel closes a moment before exit ends
        while self.proc.alive() and outcome == "eof" and time.monotonic() < exiting:
            time.sleep(0.005)
        was_alive = self.proc.alive()
        self.kill()
        lost = "the sandbox was killed and its state is lost"
        if outcome == "timeout":
            return f"TimeoutError: the run exceeded its {timeout_s:g} s wall-clock limit; {lost}"
        if outcome == "cpu":
            return f"TimeoutError: the run used more than {cpu_s:g} s of CPU time; {lost}"
        if outcome == "protocol":
            return (
                f"SandboxError: the sandbox broke the message protocol ({self.violation}); {lost}"
            )
        if self.cgroups.oom_kills() > oom_before:
            return (
                f"MemoryError: the sandbox exceeded its {memory_mb} MB memory "
                "limit and the kernel killed it; its state is lost"
            )
        if was_alive:
            return f"SandboxError: the sandbox closed its channel to the host; {lost}"
        status = self.family.exit_status(self.ns_pid, wait_s=1.0)
        if status is None:
            return "SandboxError: the sandbox process died; its state is lost"
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            return f"SandboxError: the sandbox process exited with code {code}; its state is lost"
        sig = signal.Signals(-code)
        if sig == signal.SIGXCPU:
            return f"TimeoutError: the CPU-time limit ({cpu_s:g} s) was reached; {lost}"
        return f"SandboxError: the sandbox process was killed by {sig.name}; its state is lost"


def inner_pid(pid: int) -> int | None:
    """The pid of a process as seen inside its own (innermost) pid namespace."""
    nspid = read_status(pid).get("NSpid", "").split()
    return int(nspid[-1]) if nspid else None
