"""Sandboxed execution of untrusted Python code (model-written code, agent actions).

:class:`PythonSandbox` runs code in a persistent child interpreter isolated from the
host by namespaces, an unprivileged uid, cgroups and rlimits (whatever the host allows,
measured and reported in :class:`IsolationReport`); :class:`SandboxResult` is what one
run returns. Threat model and fallback levels: ``docs/sandbox.md``.
"""

from slmkit.tools.sandbox.results import IsolationReport, SandboxConfig, SandboxResult
from slmkit.tools.sandbox.sandbox import PythonSandbox

__all__ = ["IsolationReport", "PythonSandbox", "SandboxConfig", "SandboxResult"]
