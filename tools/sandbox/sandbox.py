"""``PythonSandbox``: run untrusted Python in a contained, persistent child interpreter.

The code runs in a separate interpreter (see :mod:`._child`) behind every barrier the
host grants: pid, network, mount, IPC and UTS namespaces, an unprivileged uid with no
capabilities and no way back (no-new-privs), a read-only view of the host filesystem
with a private size-capped ``/tmp``, memory and process-count cgroups, rlimits (file
size, open files, core dumps, CPU per run), a scrubbed environment. Where the host
grants less it falls back step by step and the :class:`IsolationReport`, measured from
outside, says exactly what is in force. Threat model and fallbacks: ``docs/sandbox.md``.

The host side trusts nothing the sandboxed process says: the wall clock and CPU time
are watched on the host, output is capped there, every message is size-checked and
type-checked there, and only registered host tools can be called, with JSON in and out.

This module is the public class; the host side is split by responsibility:
:mod:`._process` (the message protocol, the worker and its family), :mod:`._spawn`
(starting and forking workers), :mod:`._isolation` (measuring what is in force),
:mod:`._linux` (``/proc``, process handles, rlimits) and :mod:`._cgroups` (cgroup v2 or
v1 limits). :mod:`._child` is what runs inside.
"""

from __future__ import annotations

import atexit
import contextlib
import keyword
import math
import os
import resource
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from slmkit.tools.errors import SandboxError
from slmkit.tools.sandbox._process import Member, Outcome, Output
from slmkit.tools.sandbox._spawn import fork_member, launch
from slmkit.tools.sandbox.results import IsolationReport, SandboxConfig, SandboxResult

__all__ = ["PythonSandbox"]

_RESERVED_NAMES = {"final_answer", "ToolCallError"}


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
        self._member: Member | None = None
        self._member, self._isolation = launch(self.config, self._tools)
        _LIVE.add(self)

    @classmethod
    def _adopt(
        cls, parent: PythonSandbox, member: Member, isolation: IsolationReport
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
        if not isinstance(code, str):  # the worker would run nothing and report success
            raise SandboxError(
                f"code must be a str of Python source, not {type(code).__name__}",
                hint="pass the source text (bytes: code.decode(); lines: '\\n'.join(lines))",
            )
        if timeout_s is not None and timeout_s <= 0:
            raise SandboxError(f"timeout_s must be > 0, got {timeout_s}", hint="omit it")
        with self._lock:
            self._check_open()
            restarted = False
            if self._member is None:
                if not self.config.auto_restart:
                    return self._dead_result()
                self._member, self._isolation = launch(self.config, self._tools)
                restarted = True
            return self._run(self._member, code, timeout_s or self.config.timeout_s, restarted)

    def _run(self, member: Member, code: str, timeout_s: float, restarted: bool) -> SandboxResult:
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
        out = Output(self.config.max_output_bytes)
        err = Output(self.config.max_output_bytes)
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
            error = member.kill_reason(
                outcome, oom_before, timeout_s, cpu_limit, self.config.memory_mb
            )
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

    def _answer_call(self, member: Member, frame: dict[str, Any], deadline: float) -> None:
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
            except (Exception, SystemExit) as exc:  # the code's problem, not the host's
                reply = {"op": "raise", "error": f"{type(exc).__name__}: {exc}"}
        left = deadline - time.monotonic()
        try:
            member.send(reply, left)
        except (TypeError, ValueError) as exc:
            member.send({"op": "raise", "error": f"result is not JSON-serializable: {exc}"}, left)

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
            member, isolation = fork_member(self.config, self._member)
            return PythonSandbox._adopt(self, member, isolation)

    def restart(self) -> None:
        """Replace the sandbox process by a fresh one (empty state, new work dir)."""
        with self._lock:
            self._check_open()
            self._drop_member()
            self._member, self._isolation = launch(self.config, self._tools)

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
