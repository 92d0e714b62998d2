"""Starting sandbox workers: a fresh family at the strongest level allowed, or a fork.

A fresh start runs ``python -I -S -B _child.py`` under a new session, hands it its
configuration over the channel, waits for ``hello``, finds the worker under init in the
host's process table (never trusting the pid it claims), puts it in its cgroups, then
measures its isolation. A fork asks a running worker to fork itself and gives the copy
its own channel, output pipes, cgroups and work dir.
"""

from __future__ import annotations

import inspect
import os
import site
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from slmkit.tools.errors import SandboxError
from slmkit.tools.sandbox import _child
from slmkit.tools.sandbox._cgroups import Cgroups
from slmkit.tools.sandbox._isolation import measure_or_destroy
from slmkit.tools.sandbox._linux import ProcHandle, children_of
from slmkit.tools.sandbox._process import (
    BASE_ENV,
    MIB,
    Family,
    FrameReader,
    Member,
    Output,
    StartError,
)
from slmkit.tools.sandbox.results import IsolationReport, SandboxConfig

__all__ = ["fork_member", "launch"]

_CHILD_SCRIPT = Path(_child.__file__).resolve()
# One thread per numeric library: threads count against the process limit and the
# CPU-time budget, and a sandbox is not the place to fan out over every core.
_CODE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _tool_doc(fn: Callable[..., Any]) -> str:
    description = getattr(fn, "description", None)
    if isinstance(description, str):
        return description[:2000]
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return (inspect.getdoc(fn) or "")[:2000]
    return ""


def _site_packages() -> list[str]:
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def launch(
    config: SandboxConfig, tools: dict[str, Callable[..., Any]]
) -> tuple[Member, IsolationReport]:
    """Start a sandbox at the strongest isolation level allowed (see ``config.isolation``)."""
    levels: list[Literal["namespaces", "rlimits"]]
    levels = ["namespaces", "rlimits"] if config.isolation == "auto" else [config.isolation]
    failures: list[str] = []
    for level in levels:
        try:
            member = _spawn(config, tools, level)
        except StartError as exc:
            failures.append(f"{level} level unavailable: {exc}")
            continue
        member.family.facts["failures"] = failures
        return member, measure_or_destroy(member)
    raise SandboxError(
        "the code sandbox could not start: " + "; ".join(failures),
        hint="isolation='auto' falls back to rlimits when namespaces are refused; "
        "check that the Python interpreter can run and /proc is mounted",
    )


def _spawn(
    config: SandboxConfig,
    tools: dict[str, Callable[..., Any]],
    level: Literal["namespaces", "rlimits"],
) -> Member:
    cgroups = Cgroups.create(config.memory_mb * MIB, config.max_processes)
    rlimits = {"FSIZE": config.max_file_mb * MIB, "NOFILE": config.max_open_files, "CORE": 0}
    if not cgroups.memory:
        rlimits["AS"] = config.memory_mb * MIB
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
            env=dict(BASE_ENV),
            cwd="/",
            start_new_session=True,
        )
    except OSError as exc:
        for fd in (lifeline_w, status_r, out_r, err_r):
            os.close(fd)
        chan.close()
        cgroups.remove()
        raise StartError(f"cannot start {sys.executable}: {exc}") from None
    finally:
        chan_child.close()
        for fd in (lifeline_r, status_w, out_w, err_w):
            os.close(fd)
    family = Family(proc, lifeline_w, status_r)
    family.private_tmp = level == "namespaces"
    family.join()
    member = Member(family, chan, out_r, err_r, cgroups, FrameReader(config.max_message_mb * MIB))
    diag = Output(4000)
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
        "env": {**BASE_ENV, **_CODE_ENV, **config.env},
    }
    try:
        member.send(cfg, config.startup_timeout_s)
        hello = member.expect("hello", deadline, diag)
        while not (kids := children_of(proc.pid)):
            if time.monotonic() > deadline:
                raise StartError("init process not found")
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
    except (StartError, OSError) as exc:
        member.destroy()
        detail = diag.text("stderr").strip()
        raise StartError(f"{exc}" + (f" [stderr: {detail[-1500:]}]" if detail else "")) from None
    return member


def _own_tempdir(path: str) -> str | None:
    """The host-side work dir the worker made (only ever removed if it is really ours)."""
    real = os.path.realpath(path)
    prefix = os.path.join(os.path.realpath(tempfile.gettempdir()), "slmkit-sandbox-")
    return real if real.startswith(prefix) and os.path.isdir(real) else None


def fork_member(config: SandboxConfig, origin: Member) -> tuple[Member, IsolationReport]:
    """A new member whose worker is a fork of ``origin``'s (same family, own pipes)."""
    family = origin.family
    assert family.init is not None
    cgroups = Cgroups.create(config.memory_mb * MIB, config.max_processes)
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
    member = Member(
        family,
        chan,
        out_r,
        err_r,
        cgroups,
        FrameReader(config.max_message_mb * MIB),
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
    except (StartError, OSError) as exc:
        member.destroy()
        raise SandboxError(
            f"fork failed: {exc}", hint="the original sandbox is unchanged; try again"
        ) from None
    return member, measure_or_destroy(member)
