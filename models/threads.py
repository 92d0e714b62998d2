"""How many CPU threads token-by-token decoding should use.

Decoding one token of a small model is a few milliseconds of work split across threads
that spin-wait for each other at every layer. On a machine whose cores are busy (a test
suite, a sandbox, other jobs) a thread per logical CPU stalls on every step. Measured on
2 loaded cores with SmolLM2-135M: llama.cpp 15 tokens/s with 1 thread and 1 token/s with
2; transformers 4x slower wall-clock (5x the CPU time) with 2 threads than with 1. Half
the CPUs is also llama.cpp's own default (its physical-core count).
"""

from __future__ import annotations

import os

__all__ = ["cpu_count", "decode_threads"]


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def decode_threads() -> int:
    """Threads for decoding: ``$SLMKIT_THREADS``, or half the CPUs (at least 1)."""
    env = os.environ.get("SLMKIT_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, cpu_count() // 2)
