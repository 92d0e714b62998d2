"""What a sandbox is configured with, what a run returns, and what isolation is in force."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IsolationReport", "SandboxConfig", "SandboxResult"]


class SandboxConfig(BaseModel):
    """Limits and options of a :class:`~slmkit.tools.sandbox.PythonSandbox`.

    Every limit applies to one sandbox (a fork gets its own copy of each), and each run
    gets the full ``timeout_s`` and ``cpu_time_s``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=10.0, gt=0, description="wall-clock limit of one run()")
    cpu_time_s: float | None = Field(
        default=None, gt=0, description="CPU seconds one run() may use (default: timeout_s)"
    )
    memory_mb: int = Field(default=512, ge=64, description="memory of the sandbox's processes")
    max_processes: int = Field(default=64, ge=8, description="processes and threads at once")
    max_file_mb: int = Field(default=64, ge=1, description="size of any one file written")
    disk_mb: int = Field(
        default=256, ge=8, description="size of the private /tmp (namespaces only)"
    )
    max_open_files: int = Field(default=256, ge=32, description="open file descriptors per process")
    max_output_bytes: int = Field(
        default=32_000, ge=256, description="stdout, and separately stderr, kept per run"
    )
    max_text_chars: int = Field(
        default=8_000, ge=200, description="kept of a traceback or of the final expression's repr"
    )
    max_message_mb: int = Field(
        default=16, ge=1, description="largest message the sandbox may send"
    )
    isolation: Literal["auto", "namespaces", "rlimits"] = Field(
        default="auto",
        description="auto: the strongest the host allows; namespaces: fail without them; "
        "rlimits: no namespaces (weaker, see IsolationReport.warnings)",
    )
    auto_restart: bool = Field(
        default=True,
        description="after a kill, the next run() starts a fresh sandbox (restarted=True)",
    )
    uid: int = Field(default=65534, ge=1, description="uid the code runs as when the host is root")
    gid: int = Field(default=65534, ge=1, description="gid the code runs as when the host is root")
    site_packages: bool = Field(
        default=True, description="let the code import the host environment's installed packages"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment variables for the code"
    )
    startup_timeout_s: float = Field(
        default=30.0, gt=0, description="limit for start, fork, restart"
    )


@dataclass(frozen=True)
class IsolationReport:
    """What is actually in force around the sandboxed code, as measured by the host.

    The namespace, uid, no-new-privileges, rlimit, mount and cgroup facts are read from
    the worker's ``/proc`` entries from outside, after start-up; nothing here is taken
    from the sandboxed process's word. ``warnings`` lists what is *not* protected.
    """

    level: Literal["namespaces", "rlimits"]
    user_ns: bool
    pid_ns: bool
    net_ns: bool
    mount_ns: bool
    ipc_ns: bool
    uts_ns: bool
    rootfs_readonly: bool
    private_tmp: bool
    proc: Literal["private", "hidden", "host"]
    cgroup_memory: bool
    cgroup_pids: bool
    cgroup_versions: dict[str, str]
    """The hierarchy of each cgroup controller in force: ``{"memory": "v2", ...}``."""
    rlimits: dict[str, str]
    cpu_limit: str
    uid: int
    gid: int
    capabilities: bool
    no_new_privs: bool
    network: Literal["netns", "blocked-sockets", "open"]
    env_scrubbed: bool
    workdir: str
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for logs and agent observations."""
        parts = [self.level, f"uid={self.uid}", f"network={self.network}"]
        parts += [n for n in ("pid_ns", "net_ns", "mount_ns", "user_ns") if getattr(self, n)]
        if self.cgroup_memory or self.cgroup_pids:
            parts.append(
                "cgroups="
                + "+".join(
                    f"{n}({self.cgroup_versions.get(n, '?')})"
                    for n, on in (("memory", self.cgroup_memory), ("pids", self.cgroup_pids))
                    if on
                )
            )
        return " ".join(parts) + (f" ({len(self.warnings)} warnings)" if self.warnings else "")


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one :meth:`PythonSandbox.run`; a run never raises for the code.

    ``error`` holds the traceback (its tail) of an exception in the code, or says why
    the sandbox was killed; ``killed`` is true when the sandbox process died (timeout,
    memory, CPU, crash), after which its state is gone. ``value`` is the ``repr`` of a
    final expression, as in a notebook; ``final_answer``/``finished`` record a call of
    ``final_answer(x)`` in the code.
    """

    stdout: str
    stderr: str
    error: str | None
    timed_out: bool
    killed: bool
    duration_s: float
    isolation: IsolationReport
    value: str | None = None
    final_answer: Any = None
    finished: bool = False
    restarted: bool = False
    truncated: bool = False
    tool_calls: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the code ran to its end (or to ``final_answer``) without error."""
        return self.error is None and not self.killed
