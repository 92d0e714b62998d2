"""Score distilled students on a development set, so recipes are compared without the
held-out items.

The development set is BFCL *training*-split items that no laptop run collects on: items
200-239 of ``simple``'s training split, 130-165 of ``multiple``'s and 100-139 of
``parallel_multiple``'s (the laptop run collects on the first 60 of each), less any whose
request nearly duplicates (word Jaccard >= 0.8) one of the first ``--collected`` training
items of each category. They are scored as the ``eval`` stage scores the held-out items:
F16 GGUFs through llama.cpp, the ToolAgent, BFCL's AST checker. Each student's results
are kept under ``--out`` and resume like any evaluation; the table compares each with the
first one given (the base model, say) item by item (fixed, broken, exact sign test), with
each one's successes per category and its failures by kind (wrong function, arguments, ...).

    python distill_dev.py --student base=smollm2 --student default=../runs/distill-X/student
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from slmkit.simulators import load_env
from slmkit.simulators.envs.bfcl import BfclEnv
from slmkit.simulators.registry import EnvSpec, register_env
from slmkit.training.decontam import request_words, similarity
from slmkit.training.evaluation import eval_before_after
from slmkit.training.report import category_rows, paired_outcomes
from slmkit.training.sft import resolve_student

DEV_RANGES = {"simple": (200, 240), "multiple": (130, 166), "parallel_multiple": (100, 140)}
"""Per category, the training-split positions of the development items."""


class DevEnv(BfclEnv):
    """The development items of BFCL (see the module docs), as one environment."""

    def __init__(self, *, collected: int = 60, **kw: Any) -> None:
        super().__init__(category="+".join(DEV_RANGES), **kw)
        self.collected = collected

    def _tasks(self, split: str) -> Any:
        per_cat = {c: list(BfclEnv(category=c, split="train").tasks()) for c in DEV_RANGES}
        seen = [
            request_words(str(t["prompt"]))
            for tasks in per_cat.values()
            for t in tasks[: self.collected]
        ]
        for cat, (lo, hi) in DEV_RANGES.items():
            for task in per_cat[cat][lo:hi]:
                words = request_words(str(task["prompt"]))
                if any(similarity(words, s) >= 0.8 for s in seen):
                    continue
                yield task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", action="append", required=True, help="label=path|smollm2")
    parser.add_argument("--out", default="results/distill_dev", help="results folder")
    parser.add_argument("--collected", type=int, default=60, help="training items per category")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    register_env(
        EnvSpec(
            name="bfcldev",
            factory=lambda **kw: DevEnv(collected=args.collected, **kw),
            description="BFCL development items",
        )
    )
    n = len(list(load_env("bfcldev", split="train").tasks()))
    results: dict[str, tuple[Path, dict[str, Any]]] = {}
    for spec in args.student:
        label, _, path = spec.partition("=")
        folder = Path(args.out) / label
        reports = eval_before_after(
            folder,
            env="bfcldev",
            split="train",
            n=None,
            base=None,
            trained=resolve_student(path),
            backend="llamacpp",
            workers=args.workers,
            progress=False,
        )
        results[label] = (folder / "after.jsonl", reports["after"])

    base_label, (base, _) = next(iter(results.items()))
    cats = [row[0] for row in category_rows(base, base)]
    print(f"\n{n} development items; paired against {base_label}\n")
    print(f"| student | success | fixed | broken | sign test p | {' | '.join(cats)} | failures |")
    print("|---|---|---|---|---|" + "---|" * len(cats) + "---|")
    for label, (path, report) in results.items():
        paired = paired_outcomes(base, path)
        per = [row[2] for row in category_rows(base, path)]  # this student's cell
        failed = ", ".join(f"{k} {v}" for k, v in sorted(report["failures"].items()))
        print(
            f"| {label} | {report['successes']}/{report['tasks']} | {paired['fixed']} | "
            f"{paired['broken']} | {paired['p_value']} | {' | '.join(per)} | {failed} |"
        )


if __name__ == "__main__":
    main()
