"""Tokens/s of the embedded model under different llama.cpp builds (prompt and decode).

Each build is a folder holding an installed ``llama_cpp`` package (``pip install --target
DIR <wheel>``), or ``installed`` for the one in this environment. Every measurement runs
in a fresh child process with that folder first on ``PYTHONPATH``, so one build's
libraries never serve another's run; builds are measured in alternating rounds, so load
from other jobs on the machine falls on all of them alike (the median is reported).
A build made with ``GGML_BACKEND_DL`` (runtime CPU dispatch) has its CPU variants loaded
with ``ggml_backend_load_all_from_path``, which llama-cpp-python does not call itself (its
wheel puts the variants in ``site-packages/bin``)::

    python benchmarks/llama_builds.py --build portable=installed \\
        --build native=/work/llama-builds/native --build dispatch=/work/llama-builds/dispatch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from slmkit.models import embedded_gguf
from slmkit.models.preflight import cpu_flags
from slmkit.models.threads import cpu_count, decode_threads

_CHILD = r"""
import ctypes, json, pathlib, sys, time
import llama_cpp
pkg = pathlib.Path(llama_cpp.__file__).parent
variants = [d for d in (pkg / "lib", pkg.parent / "bin") if any(d.glob("libggml-cpu-*.so"))]
if variants:  # a GGML_BACKEND_DL build: the wheel puts its CPU variants in site-packages/bin
    ggml = ctypes.CDLL("libggml.so.0")  # by soname: the copy libllama already loaded
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path(str(variants[0]).encode())
path = sys.argv[1]
threads, batch_threads, n_decode = (int(a) for a in sys.argv[2:5])
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads,
                      n_threads_batch=batch_threads, verbose=False)
text = "The Python language reference describes the syntax and semantics of the language. " * 12
prompt = llm.tokenize(text.encode(), add_bos=True)[:256]
llm.reset()
t0, c0 = time.perf_counter(), time.process_time()
llm.eval(prompt)
t_prompt, c_prompt = time.perf_counter() - t0, time.process_time() - c0
llm.reset()
llm.eval(prompt)
tokens = 0
t0, c0 = time.perf_counter(), time.process_time()
for tok in llm.generate(prompt, temp=0.0, reset=False):
    tokens += 1
    if tokens >= n_decode:
        break
t_gen, c_gen = time.perf_counter() - t0, time.process_time() - c0
info = llama_cpp.llama_print_system_info().decode().strip()
print(json.dumps({"prompt_tps": len(prompt) / t_prompt, "decode_tps": tokens / t_gen,
                  "prompt_tpcs": len(prompt) / c_prompt, "decode_tpcs": tokens / c_gen,
                  "system_info": info}))
"""


def measure(folder: str, threads: int, batch_threads: int, n_decode: int) -> dict[str, object]:
    env = dict(os.environ)
    if folder != "installed":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(embedded_gguf()),
            str(threads),
            str(batch_threads),
            str(n_decode),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", action="append", required=True, help="NAME=FOLDER or NAME=installed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument(
        "--threads", type=int, default=None, help="decode and prompt threads (default: slmkit's)"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/llama_builds.md"))
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    threads, batch_threads = decode_threads(), cpu_count()
    if args.threads:
        threads = batch_threads = args.threads
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in builds}
    for r in range(args.rounds):
        for name, folder in builds.items():
            runs[name].append(measure(folder, threads, batch_threads, args.decode_tokens))
            print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    load = os.getloadavg()
    lines = [
        "# llama.cpp builds: tokens/s of the embedded SmolLM2-135M (Q4_1)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {cpu_count()} CPUs, "
        f"{threads} decode / {batch_threads} prompt threads, "
        f"{args.rounds} alternating rounds, median; load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.",
        f"CPU flags: {' '.join(cpu_flags())}",
        "",
        "Tokens per CPU-second (CPU time of the process) are what a build costs; they vary",
        "far less with other jobs on the machine than wall-clock tokens/s do.",
        "",
        "| build | prompt tokens/s | decode tokens/s | prompt tokens/CPU-s | decode tokens/CPU-s "
        "| runs ok | llama.cpp system info |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        ok = [x for x in results if "error" not in x]
        if not ok:
            lines.append(
                f"| {name} | - | - | - | - | 0/{len(results)} | {results[0].get('error')} |"
            )
            continue
        p, d, pc, dc = (
            statistics.median(float(x[key]) for x in ok)  # type: ignore[arg-type]
            for key in ("prompt_tps", "decode_tps", "prompt_tpcs", "decode_tpcs")
        )
        info = str(ok[0]["system_info"]).replace("|", "/")
        lines.append(
            f"| {name} | {p:.0f} | {d:.1f} | {pc:.0f} | {dc:.1f} | {len(ok)}/{len(results)} "
            f"| {info} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
