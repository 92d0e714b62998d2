"""What isolation a sandbox worker really has, read from outside through ``/proc``.

The :class:`IsolationReport` is measured, never taken from the worker's word: namespaces
by comparing ``/proc/PID/ns`` links with the host's, mounts from its ``mountinfo``, uid,
capabilities and no-new-privs from its ``status``, limits from its ``limits``. Every gap
becomes a warning, so nobody mistakes a fallback for the real thing.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from slmkit.tools.errors import SandboxError
from slmkit.tools.sandbox._linux import read_limits, read_status
from slmkit.tools.sandbox._process import BASE_ENV, Member
from slmkit.tools.sandbox.results import IsolationReport

__all__ = ["measure_or_destroy"]

_OWN_MOUNTS = ("/tmp", "/dev/shm", "/run", "/proc")


def _mount_table(pid: int) -> dict[str, tuple[str, set[str]]]:
    """Mount point -> (filesystem type, mount options) as the process sees them."""
    table: dict[str, tuple[str, set[str]]] = {}
    with open(f"/proc/{pid}/mountinfo") as fh:
        for line in fh:
            before, _, after = line.partition(" - ")
            fields = before.split()
            table[fields[4]] = (after.split()[0], set(fields[5].split(",")))
    return table


def _measure(member: Member) -> IsolationReport:
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
    cgroups = member.cgroups
    in_cgroups = cgroups.contains(pid)
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
        cgroup_memory=cgroups.memory and in_cgroups,
        cgroup_pids=cgroups.pids and in_cgroups,
        cgroup_versions=cgroups.versions if in_cgroups else {},
        rlimits=rlimits,
        cpu_limit="per run: watched by the host"
        + (", and RLIMIT_CPU set per run (kernel)" if os.geteuid() == 0 else ""),
        uid=uid,
        gid=gid,
        capabilities=int(status.get("CapEff", "0"), 16) != 0,
        no_new_privs=status.get("NoNewPrivs", "0").strip() == "1",
        network=network,
        env_scrubbed=env_keys <= set(BASE_ENV),
        workdir=member.workdir,
    )
    facts = {**family.facts, "cgroup_note": cgroups.note}
    return _with_warnings(report, writable, _interfaces(pid) if net_ns else [], facts)


def measure_or_destroy(member: Member) -> IsolationReport:
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
    if facts.get("cgroup_note") and not (report.cgroup_memory and report.cgroup_pids):
        warn.append(f"cgroup v2 not used: {facts['cgroup_note']}")
    if not report.env_scrubbed:
        warn.append("the environment was not scrubbed")
    if facts.get("unreachable"):
        warn.append(
            f"not readable by uid {report.uid}: {', '.join(facts['unreachable'])}; "
            "imports from there fail"
        )
    return IsolationReport(**{**report.as_dict(), "warnings": tuple(warn)})
