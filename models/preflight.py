"""Run the embedded model once in a child process before anything relies on it.

A llama.cpp compiled for instructions the operating system does not allow (AMX tiles
that a hypervisor withholds, AVX-512 on a CPU without it) kills its process with
SIGSEGV or SIGILL at the first matrix multiply. Inside pytest that ends the run with no
summary; inside ``agentctl`` with exit code 139. ``python -m slmkit.models.preflight``
(run by ``make test`` and ``make run`` first) decodes a few tokens in a child process
and, if the child dies on a signal, stops with a message that names the signal, the
library, what this CPU advertises and the command that rebuilds llama.cpp portably.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REBUILD_COMMAND", "PreflightResult", "llama_libraries", "main", "run_preflight"]

REBUILD_COMMAND = "make rebuild-llama"
"""Rebuilds llama-cpp-python with the Makefile's portable ``LLAMA_CMAKE_ARGS``."""

_CHILD = """
from slmkit.models import embedded_gguf
from slmkit.models.llamacpp import LlamaCppModel
model = LlamaCppModel(embedded_gguf(), n_ctx=512)
out = model.chat([{"role": "user", "content": "Say hi."}], max_tokens=4)
print("ok", out.usage.completion_tokens)
"""

# The instruction-set flags that decide which llama.cpp kernels can run here.
_SIMD_PREFIXES = ("avx", "amx", "fma", "f16c", "bmi2", "sse4", "ssse3", "vnni", "asimd", "sve")


@dataclass(frozen=True)
class PreflightResult:
    """What the child process did: ``ok``, or why not in ``message``."""

    ok: bool
    returncode: int
    message: str
    signal_name: str | None = None


def cpu_flags() -> list[str]:
    """The instruction-set extensions this CPU advertises (from ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            return sorted(f for f in value.split() if f.startswith(_SIMD_PREFIXES))
    return []


def llama_libraries() -> list[Path]:
    """The ggml/llama shared libraries of the installed llama-cpp-python."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    return sorted(p for p in root.rglob("lib*.so*") if "ggml" in p.name or "llama" in p.name)


def run_preflight(child_code: str = _CHILD, *, timeout_s: float = 600.0) -> PreflightResult:
    """Run ``child_code`` (by default: load the embedded model, decode 4 tokens)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", child_code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return PreflightResult(
            ok=False,
            returncode=-1,
            message=f"the embedded model did not answer within {timeout_s:.0f} s; "
            "is the machine overloaded?",
        )
    if proc.returncode == 0:
        return PreflightResult(ok=True, returncode=0, message=proc.stdout.strip())
    if proc.returncode < 0:
        return _died_on_signal(-proc.returncode, proc.stderr)
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    return PreflightResult(
        ok=False,
        returncode=proc.returncode,
        message=f"the embedded model failed to run (exit code {proc.returncode}):\n{tail}",
    )


def _died_on_signal(signum: int, stderr: str) -> PreflightResult:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    libs = llama_libraries()
    cpu_lib = next((p for p in libs if "ggml-cpu" in p.name), libs[0] if libs else None)
    flags = cpu_flags()
    risky = [f for f in flags if f.startswith(("amx", "avx512"))]
    lines = [
        f"llama.cpp died with {name} (signal {signum}) running the embedded model.",
        f"  library: {cpu_lib or 'llama_cpp (no shared library found)'}",
        f"  this CPU advertises: {' '.join(flags) or '(unknown)'}",
    ]
    if risky:
        lines.append(
            f"  The build most likely uses {', '.join(risky)}, which this CPU lists but the "
            "kernel or hypervisor does not enable (a native build, -march=native)."
        )
    lines += [
        f"  fix: {REBUILD_COMMAND}   (rebuilds llama-cpp-python for the portable AVX2 "
        "baseline set in the Makefile's LLAMA_CMAKE_ARGS)",
    ]
    tail = stderr.strip().splitlines()[-5:]
    if tail:
        lines.append("  child's last words: " + " | ".join(tail))
    return PreflightResult(ok=False, returncode=-signum, message="\n".join(lines), signal_name=name)


def main() -> int:
    result = run_preflight()
    if result.ok:
        print(f"preflight: the embedded model runs with this llama.cpp build ({result.message})")
        return 0
    print(f"preflight failed: {result.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
