"""The distillation report: did the student improve, by how much, and how sure are we.

Small held-out sets make point estimates noisy, so the report gives each success rate a
95% Wilson score interval and, because before and after ran on the *same* tasks, a
paired count (fixed / broken) with an exact sign test on the tasks that changed. The
verdict sentence is written from those numbers, whichever way they go. The Markdown
comes from ``templates/distill_report.md.jinja``; the chart is drawn with matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from slmkit.agents import read_trajectories
from slmkit.training.config import DistillConfig, RlConfig
from slmkit.training.curve import curve_chart, curve_points
from slmkit.training.stages import StageStatus

__all__ = [
    "category_rows",
    "failure_rows",
    "paired_outcomes",
    "sign_test",
    "verdict",
    "wilson",
    "write_distill_report",
    "write_rl_report",
]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (``(0, 1)`` when ``n == 0``)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(fixed: int, broken: int) -> float:
    """Exact two-sided binomial (sign) test of ``fixed`` vs ``broken`` changed pairs."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = float(sum(math.comb(n, i) for i in range(k + 1))) / float(2**n)
    return min(1.0, 2 * tail)


def _successes(path: Path) -> dict[str, bool]:
    if not path.is_file():
        return {}
    return {t.id: bool(t.meta.get("success")) for t in read_trajectories(path)}


def _categories(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {t.id: str(t.task.get("category") or "all") for t in read_trajectories(path)}


def category_rows(before: Path, after: Path) -> list[list[str]]:
    """Per task category: success before and after (Wilson), fixed, broken, sign test."""
    b, a, cats = _successes(before), _successes(after), _categories(after)
    rows = []
    for cat in sorted(set(cats.values())):
        ids = [t for t, c in cats.items() if c == cat and t in b]
        kb, ka = sum(b[t] for t in ids), sum(a[t] for t in ids)
        fixed = sum(1 for t in ids if a[t] and not b[t])
        broken = sum(1 for t in ids if b[t] and not a[t])
        cells = []
        for k in (kb, ka):
            lo, hi = wilson(k, len(ids))
            cells.append(f"{k}/{len(ids)} [{100 * lo:.0f}, {100 * hi:.0f}]")
        rows.append([cat, *cells, str(fixed), str(broken), f"{sign_test(fixed, broken):.3f}"])
    return rows


def failure_rows(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[list[str]]:
    """Failed runs by kind, before and after, from two evaluation summaries (their
    ``failures``: e.g. BFCL's wrong function vs arguments): what training changed, where
    success alone says only how much. Empty when the environment names no kinds."""
    b, a = dict(before.get("failures") or {}), dict(after.get("failures") or {})
    kinds = sorted(set(b) | set(a), key=lambda k: (-b.get(k, 0) - a.get(k, 0), k))
    return [
        [kind, str(b.get(kind, 0)), str(a.get(kind, 0)), f"{a.get(kind, 0) - b.get(kind, 0):+d}"]
        for kind in kinds
    ]


def paired_outcomes(before: Path, after: Path) -> dict[str, Any]:
    """Per-task comparison of two evaluations on the same tasks."""
    b, a = _successes(before), _successes(after)
    common = sorted(set(a) & set(b))
    fixed = sum(1 for t in common if a[t] and not b[t])
    broken = sum(1 for t in common if b[t] and not a[t])
    both = sum(1 for t in common if a[t] and b[t])
    return {
        "n": len(common),
        "fixed": fixed,
        "broken": broken,
        "both": both,
        "neither": len(common) - fixed - broken - both,
        "p_value": f"{sign_test(fixed, broken):.3f}",
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f} min"


def _delta(before: float | None, after: float | None, *, points: bool) -> str:
    if before is None or after is None:
        return "n/a"
    d = after - before
    return f"{100 * d:+.1f} pts" if points else f"{d:+,.1f}"


def _rate(successes: int, tasks: int) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "successes": successes,
        "success_rate": successes / tasks if tasks else None,
    }


def _success_cell(r: Mapping[str, Any]) -> str:
    n, k = int(r.get("tasks") or 0), int(r.get("successes") or 0)
    lo, hi = wilson(k, n)
    return f"{_pct(r.get('success_rate'))} [{100 * lo:.1f}, {100 * hi:.1f}] ({k}/{n})"


def three_way(root: Path, ev: Mapping[str, Any]) -> dict[str, Any] | None:
    """Before SFT, after SFT, after RL: success (Wilson) and paired sign tests (None: no RL)."""
    if not ev.get("after_rl"):
        return None
    labels = {"before": "before SFT", "after": "after SFT", "after_rl": "after RL"}
    rows = [[name, _success_cell(ev.get(key) or {})] for key, name in labels.items()]
    pairs = []
    for a, b in (("before", "after"), ("after", "after_rl"), ("before", "after_rl")):
        p = paired_outcomes(root / "eval" / f"{a}.jsonl", root / "eval" / f"{b}.jsonl")
        pairs.append(
            [
                f"{labels[a]} -> {labels[b]}",
                *(str(p[k]) for k in ("n", "fixed", "broken")),
                p["p_value"],
            ]
        )
    return {"rows": rows, "pairs": pairs}


def _result_rows(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[list[str]]:
    rows = [
        [
            "success (95% CI)",
            _success_cell(before),
            _success_cell(after),
            _delta(before.get("success_rate"), after.get("success_rate"), points=True),
        ]
    ]
    for key, label in (
        ("schema_valid_rate", "schema-valid rate"),
        ("executable_call_rate", "executable-call rate"),
    ):
        rows.append(
            [
                label,
                _pct(before.get(key)),
                _pct(after.get(key)),
                _delta(before.get(key), after.get(key), points=True),
            ]
        )
    for key, label, fmt in (
        ("mean_reward", "mean reward", "{:.3f}"),
        ("tokens_per_task", "tokens / task", "{:,.0f}"),
        ("task_p50_s", "task p50 latency (s)", "{:.2f}"),
        ("episodes_per_s", "episodes/s", "{:.3g}"),
        ("calls_per_s", "calls/s", "{:.3g}"),
        ("tokens_per_s", "generated tokens/s", "{:.3g}"),
    ):
        rows.append(
            [
                label,
                _num(before.get(key), fmt),
                _num(after.get(key), fmt),
                _delta(before.get(key), after.get(key), points=False),
            ]
        )
    return rows


def verdict(before: Mapping[str, Any], after: Mapping[str, Any], paired: Mapping[str, Any]) -> str:
    """The report's headline, from two evaluation summaries and :func:`paired_outcomes`:
    the paired sign test decides whether a change is larger than the noise; overlapping
    Wilson intervals are mentioned, not used (they ignore the pairing)."""
    b, a = before.get("success_rate"), after.get("success_rate")
    if b is None or a is None:
        return "The evaluation did not produce both numbers; see the stage status files."
    n_b, n_a = int(before.get("tasks") or 0), int(after.get("tasks") or 0)
    lo_b, hi_b = wilson(int(before.get("successes") or 0), n_b)
    lo_a, hi_a = wilson(int(after.get("successes") or 0), n_a)
    diff = 100 * (a - b)
    if abs(diff) < 1e-9:
        head = f"**The student did not change on the held-out tasks** ({_pct(b)} before and after)."
    else:
        word = "improved" if diff > 0 else "got worse"
        head = f"**The student {word}: {_pct(b)} -> {_pct(a)} success ({diff:+.1f} points).**"
    # The same tasks before and after: the paired sign test decides. The two intervals
    # ignore the pairing, so overlapping intervals do not make a paired change noise.
    overlap = lo_a <= hi_b and lo_b <= hi_a
    p = float(paired.get("p_value", "1"))
    counts = f"{paired.get('fixed', 0)} fixed, {paired.get('broken', 0)} broken"
    if p >= 0.05:
        tail = (
            f" With {n_a} tasks this is within the noise: the paired sign test gives "
            f"p = {paired.get('p_value')} ({counts}). More held-out tasks would tell."
        )
    else:
        tail = (
            f" The change is larger than the noise of {n_a} paired tasks: the sign test gives "
            f"p = {paired.get('p_value')} ({counts}). The 95% intervals of the two rates "
            f"{'overlap' if overlap else 'do not overlap'}; they ignore the pairing."
        )
    return head + tail


def _chart(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    stages: list[list[str]],
    walls: list[float],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["success", "schema-valid", "executable calls"]
    keys = ["success_rate", "schema_valid_rate", "executable_call_rate"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    for j, (name, r, color) in enumerate(
        (("before", before, "#9aa5b1"), ("after", after, "#2f7ed8"))
    ):
        vals = [100 * float(r.get(k) or 0.0) for k in keys]
        lo, hi = wilson(int(r.get("successes") or 0), int(r.get("tasks") or 0))
        xs = [i + (j - 0.5) * width for i in range(len(keys))]
        ax.bar(xs, vals, width, label=name, color=color)
        err = [[vals[0] - 100 * lo], [100 * hi - vals[0]]]  # the interval: success only
        ax.errorbar([xs[0]], [vals[0]], yerr=err, fmt="none", ecolor="black", capsize=4)
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(keys)), labels)
    ax.set_ylim(0, 110)
    ax.set_ylabel("% (success with 95% Wilson interval)")
    ax.set_title("student on held-out tasks")
    ax.legend(loc="lower right")
    ax2.barh([s[0] for s in stages][::-1], walls[::-1], color="#6c8ebf")
    ax2.set_xlabel("wall time (s)")
    ax2.set_title("time per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stage_rows(statuses: Mapping[str, StageStatus | None]) -> tuple[list[list[str]], list[float]]:
    rows, walls = [], []
    for name, st in statuses.items():
        if name == "report":
            continue
        wall = st.wall_s if st is not None else 0.0
        walls.append(wall)
        rows.append([name, _secs(wall), str(st.attempts if st is not None else 0)])
    return rows, walls


def _render(template: str, **values: Any) -> str:
    import jinja2

    text = resources.files("slmkit.training").joinpath(f"templates/{template}").read_text()
    env = jinja2.Environment(autoescape=False, keep_trailing_newline=True)
    return env.from_string(text).render(**values)


def _outputs(statuses: Mapping[str, StageStatus | None], stage: str) -> dict[str, Any]:
    st = statuses.get(stage)
    return dict(st.outputs) if st is not None else {}


_TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "write_tokens")
"""A teacher row's tokens: its episodes', and for written tasks the writing's too."""


def _synth_line(synth: Mapping[str, Any]) -> str:
    """How the written tasks came about: per environment, attempts and drops."""
    envs = synth.get("envs") or {}
    if not envs:
        return ""
    parts = []
    for env, s in envs.items():
        dropped = ", ".join(f"{k} {v}" for k, v in (s.get("write_dropped") or {}).items())
        parts.append(
            f"{env}: {s.get('written')} of {s.get('write_attempts')} written "
            f"({dropped or 'none dropped'})"
        )
    return (
        f"Written tasks ({synth.get('per_seed')} per verified run, calls then request; "
        "a task counts as verified when the teacher, given only the request, makes calls the "
        "checker accepts against the written ones): " + "; ".join(parts) + "."
    )


def write_distill_report(
    root: Path, cfg: DistillConfig, statuses: Mapping[str, StageStatus | None]
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` into the run folder ``root``."""
    ev = _outputs(statuses, "eval")
    before, after = ev.get("before", {}), ev.get("after", {})
    paired = paired_outcomes(root / "eval" / "before.jsonl", root / "eval" / "after.jsonl")
    collect_rows = []
    synth = _outputs(statuses, "synth")
    teacher_runs = [
        *_outputs(statuses, "collect").get("envs", {}).items(),
        *((f"{env} (written tasks)", s) for env, s in synth.get("envs", {}).items()),
    ]
    for env, s in teacher_runs:
        collect_rows.append(
            [
                env,
                str(s.get("tasks")),
                str(s.get("successes")),
                _pct(s.get("success_rate")),
                str(s.get("attempts")),
                f"{sum(int(s.get(k, 0)) for k in _TOKEN_KEYS):,}",
                _num(s.get("calls_per_s"), "{:.3g}"),
                _num(s.get("tokens_per_s"), "{:.3g}"),
            ]
        )
    flt = _outputs(statuses, "filter")
    training = _outputs(statuses, "sft")
    losses = training.get("losses") or []
    loss_line = f"{losses[0]:.3f} (first step) -> {losses[-1]:.3f} (last)" if losses else "n/a"
    stage_rows, walls = _stage_rows(statuses)
    transfer = ev.get("transfer") or {}
    tb, ta = transfer.get("before") or {}, transfer.get("after") or {}
    curve_out = _outputs(statuses, "curve")
    curve = (
        # runs as the curve's points count them: kept runs, the validation slice included
        curve_points(curve_out, before, after, int(flt.get("kept") or training.get("rows") or 0))
        if curve_out.get("points") and before and after
        else []
    )
    md = _render(
        "distill_report.md.jinja",
        categories=category_rows(root / "eval" / "before.jsonl", root / "eval" / "after.jsonl"),
        failures=failure_rows(before, after),
        transfer_rows=_result_rows(tb, ta)[:3] if tb and ta else [],
        transfer_failures=failure_rows(tb, ta),
        transfer_paired=paired_outcomes(
            root / "eval" / "transfer" / "before.jsonl", root / "eval" / "transfer" / "after.jsonl"
        ),
        curve_rows=[
            [f"{100 * sh:.0f}%", str(runs), _success_cell(_rate(k, n))] for sh, runs, k, n in curve
        ],
        val_line=", ".join(f"step {s_}: {v:.3f}" for s_, v in training.get("val_losses") or [])
        or "n/a",
        run=root.name,
        cfg=cfg,
        total_wall=_secs(sum(walls)),
        verdict=verdict(before, after, paired),
        result_rows=_result_rows(before, after),
        paired=paired,
        collect_rows=collect_rows,
        synth_line=_synth_line(synth),
        filter=flt,
        dropped=", ".join(f"{k} {v}" for k, v in (flt.get("dropped") or {}).items()) or "none",
        training=training,
        train_time=_secs(training.get("train_s")),
        loss_line=loss_line,
        stage_rows=stage_rows,
        rl=three_way(root, ev),
        rl_stage=_outputs(statuses, "rl"),
    )
    md_path, png_path = root / "report.md", root / "report.png"
    md_path.write_text(md, encoding="utf-8")
    _chart(before, after, stage_rows, walls, png_path)
    if curve:
        curve_chart(curve, [wilson(p[2], p[3]) for p in curve], root / "curve.png")
    return md_path, png_path


def _reward_chart(
    rewards: list[float],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(range(1, len(rewards) + 1), rewards, marker="o", color="#2f7ed8")
    ax.set_xlabel("logged step")
    ax.set_ylabel("mean env reward")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("GRPO rollouts")
    if before and after:
        vals = [100 * float(r.get("success_rate") or 0.0) for r in (before, after)]
        cis = [
            wilson(int(r.get("successes") or 0), int(r.get("tasks") or 0)) for r in (before, after)
        ]
        err = [[v - 100 * lo for v, (lo, _) in zip(vals, cis, strict=True)],
               [100 * hi - v for v, (_, hi) in zip(vals, cis, strict=True)]]  # fmt: skip
        ax2.bar(["before", "after"], vals, color=["#9aa5b1", "#2f7ed8"], yerr=err, capsize=4)
        ax2.set_ylim(0, 105)
        ax2.set_title("held-out success (95% CI)")
    else:
        ax2.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_rl_report(
    root: Path, cfg: RlConfig, statuses: Mapping[str, StageStatus | None]
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` of an RL run into ``root``."""
    grpo = _outputs(statuses, "grpo")
    ev = _outputs(statuses, "eval")
    before, after = ev.get("before", {}), ev.get("after", {})
    paired = paired_outcomes(root / "eval" / "before.jsonl", root / "eval" / "after.jsonl")
    rewards = [float(r) for r in grpo.get("rewards") or []]
    reward_line = " -> ".join(f"{r:.2f}" for r in rewards) if rewards else "n/a"
    stage_rows, _ = _stage_rows(statuses)
    md = _render(
        "rl_report.md.jinja",
        run=root.name,
        cfg=cfg,
        grpo=grpo,
        train_time=_secs(grpo.get("train_s")),
        reward_line=reward_line,
        result_rows=_result_rows(before, after) if before and after else [],
        verdict=verdict(before, after, paired),
        paired=paired,
        stage_rows=stage_rows,
    )
    md_path, png_path = root / "report.md", root / "report.png"
    md_path.write_text(md, encoding="utf-8")
    _reward_chart(rewards, before, after, png_path)
    return md_path, png_path
