"""The learning curve of a distillation: held-out success against the share of data.

``distill``'s ``curve`` stage trains more students on the first 25 % and 50 % (the
``curve`` option) of the filtered training data, in a fixed seeded order, with the same
SFT options as the full student, and evaluates each on the same held-out tasks. With
the base (0 %) and the full student (100 %) from the ``eval`` stage that is the curve: a
line still rising at 100 % says more data would help; a flat one says it would not.

Every point resumes on its own after ``kill -9``: its data subset is written atomically,
SFT resumes from its checkpoints and publishes the student folder only when complete,
and the evaluation's JSONL skips the tasks already done.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from slmkit.agents import read_trajectories
from slmkit.training.config import DistillConfig, SftConfig

__all__ = ["curve_chart", "curve_points", "learning_curve"]


def _label(share: float) -> str:
    return f"p{round(100 * share):03d}"


def learning_curve(
    folder: Path,
    cfg: DistillConfig,
    *,
    train_file: Path,
    sft_config: SftConfig,
    eval_one: Callable[[Path, Path], dict[str, Any]],
    say: Callable[[str, str], None],
) -> dict[str, Any]:
    """Train and evaluate one student per share of ``cfg.curve``; return their reports.

    ``eval_one(folder, student)`` evaluates a student on the held-out tasks into
    ``folder`` (the distill pipeline's evaluation, without the base).
    """
    from slmkit.training.sft import sft

    runs = list(read_trajectories(train_file))
    order = list(range(len(runs)))
    random.Random(cfg.seed).shuffle(order)
    points: dict[str, Any] = {}
    for share in cfg.curve:
        label = _label(share)
        sub = folder / label
        sub.mkdir(parents=True, exist_ok=True)
        n = max(1, round(share * len(runs)))
        data = sub / "train.jsonl"
        if not data.is_file():
            tmp = data.with_suffix(".tmp")
            tmp.write_text("".join(runs[i].to_json() + "\n" for i in order[:n]), encoding="utf-8")
            tmp.replace(data)
        student = sub / "student"
        if not student.is_dir():
            say("curve", f"{label}: training on {n} of {len(runs)} runs")
            sft(data, model=cfg.student, out_dir=student, config=sft_config, work_dir=sub / "work")
        say("curve", f"{label}: evaluating on {cfg.eval_env}")
        report = eval_one(sub / "eval", student)
        points[label] = {"share": share, "runs": n, **report}
    return {"points": points}


def curve_points(
    curve: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any], runs: int
) -> list[tuple[float, int, int, int]]:
    """``(share, runs, successes, tasks)`` from 0 % (the base) to 100 % (the student)."""
    pts = [(0.0, 0, int(before.get("successes") or 0), int(before.get("tasks") or 0))]
    for p in sorted((curve.get("points") or {}).values(), key=lambda p: float(p["share"])):
        pts.append(
            (
                float(p["share"]),
                int(p["runs"]),
                int(p.get("successes") or 0),
                int(p.get("tasks") or 0),
            )
        )
    pts.append((1.0, runs, int(after.get("successes") or 0), int(after.get("tasks") or 0)))
    return pts


def curve_chart(
    points: list[tuple[float, int, int, int]], cis: list[tuple[float, float]], path: Path
) -> None:
    """Held-out success (with its 95% intervals ``cis``) against the share of training data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [100 * p[0] for p in points]
    ys = [100 * p[2] / p[3] if p[3] else 0.0 for p in points]
    err = [[y - 100 * lo for y, (lo, _) in zip(ys, cis, strict=True)],
           [100 * hi - y for y, (_, hi) in zip(ys, cis, strict=True)]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color="#2f7ed8")
    for x, y, p in zip(xs, ys, points, strict=True):
        ax.annotate(f"{p[1]} runs", (x, y), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=8)  # fmt: skip
    ax.set_xlabel("share of the training data (%)")
    ax.set_ylabel("held-out success (%)")
    ax.set_title("learning curve")
    ax.set_ylim(0, 105)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
