"""``distill``: a teacher agent's verified trajectories -> a small student agent.

Stages, each in its own folder of the run (``runs/distill-<time>/``) with a status file
(:mod:`slmkit.training.stages`), resumable::

    collect   the teacher agent over the training tasks, ``samples`` attempts per task,
              the first one the environment verifies kept (rejection sampling)
    filter    correct, well-formed, ended on its own; recovered tool errors kept
    sft       the student fine-tuned on them (:func:`~slmkit.training.sft`)
    rl        with ``rl`` set (``agentctl distill --rl``): GRPO from the SFT student on
              the training environment (:func:`~slmkit.training.rl`), its policy in
              ``<run>/rl/run/policy``; skipped otherwise
    eval      the student before and after (and after RL), on held-out tasks, with the
              metrics of ``agentctl eval`` (:func:`slmkit.simulators.evaluate`)
    report    ``report.md`` and ``report.png``: success with Wilson intervals, schema-
              valid and executable-call rates, tokens per task, wall time per stage

Collection and evaluation go through :mod:`slmkit.simulators` (``collect``,
``evaluate``), so their trajectories and metrics are the ones ``agentctl collect`` and
``agentctl eval`` produce.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import batching_options, existing_path, load_model
from slmkit.training.config import STAGES, DistillConfig
from slmkit.training.errors import TrainingError
from slmkit.training.filtering import filter_trajectories
from slmkit.training.stages import (
    CONFIG_FILE,
    Announce,
    PipelineResult,
    RunFolder,
    Stage,
    StageStatus,
    open_run,
    run_stages,
    silent,
)

__all__ = ["DistillResult", "distill", "distill_status"]


class DistillResult(PipelineResult):
    """Where a distillation run stands: its folder and the status of its done stages."""

    @property
    def student(self) -> Path:
        return self.run_dir / "student"


def _slug(env: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", env)


def distill_status(run_dir: str | Path) -> list[tuple[str, StageStatus | None]]:
    """Every stage of a run with its status (None: not started)."""
    root = existing_path(run_dir, what="distill run folder", kind="folder")
    if not (root / CONFIG_FILE).is_file():
        raise TrainingError(f"{root} is not a distill run folder", hint="give runs/distill-<time>")
    return RunFolder(root, STAGES).overview()


class _Pipeline:
    """The stage functions of one run (they share the config and the run folder)."""

    def __init__(self, cfg: DistillConfig, root: Path, say: Announce) -> None:
        self.cfg = cfg
        self.root = root
        self.say = say

    # ------------------------------------------------------------------ collect

    def collect(self, folder: Path) -> dict[str, Any]:
        from slmkit.simulators import CollectConfig, collect

        cfg = self.cfg
        workers = cfg.collect_workers or 1
        options = {**batching_options(cfg.teacher, workers), **cfg.teacher_options}
        model = (  # its own copy: it is closed below, and the cached one may be shared
            None if cfg.teacher_agent == "gold" else load_model(cfg.teacher, cache=False, **options)
        )
        summaries: dict[str, Any] = {}
        for env in cfg.train_envs:
            self.say("collect", f"{env} ({cfg.train_split}, {cfg.train_n or 'all'} tasks)")
            summary = collect(
                CollectConfig(
                    env=env,
                    env_options=cfg.env_options,
                    split=cfg.train_split,
                    n=cfg.train_n,
                    agent=cfg.teacher_agent,
                    model=cfg.teacher,
                    model_options=cfg.teacher_options,
                    agent_options=cfg.agent_options,
                    samples=cfg.samples,
                    sample_temperature=cfg.sample_temperature,
                    seed=cfg.seed,
                    first_thought_prefix=cfg.first_thought_prefix,
                    generate_first_thought=cfg.generate_first_thought,
                    out=folder / f"{_slug(env)}.jsonl",
                    keep="all",
                    drop_parse_errors=False,
                    drop_max_steps=False,
                    workers=cfg.collect_workers,
                    progress=cfg.progress,
                ),
                model=model,
            )
            summaries[env] = summary.model_dump(mode="json")
        if model is not None:
            model.close()
        return {"teacher": cfg.teacher, "envs": summaries}

    # ------------------------------------------------------------------ filter

    def filter(self, folder: Path) -> dict[str, Any]:
        runs: list[Trajectory] = []
        for path in sorted((self.root / "collect").glob("*.jsonl")):
            if not path.name.endswith(".ledger.jsonl"):
                runs.extend(read_trajectories(path))
        result = filter_trajectories(
            runs,
            keep_recovered_errors=self.cfg.keep_recovered_errors,
            max_per_task=self.cfg.max_per_task,
        )
        if not result.kept:
            raise TrainingError(
                f"no teacher trajectory passed the filter ({dict(result.dropped)})",
                hint="give the teacher more attempts (--samples), more tasks (--train-limit), "
                "or a stronger teacher (--teacher)",
            )
        out = folder / "train.jsonl"
        tmp = out.with_suffix(".tmp")
        tmp.write_text("".join(t.to_json() + "\n" for t in result.kept), encoding="utf-8")
        tmp.replace(out)
        return {
            "collected": len(runs),
            "kept": len(result.kept),
            "dropped": dict(result.dropped),
            "recovered_errors": result.recovered_errors,
            "train_file": str(out),
        }

    # ------------------------------------------------------------------ sft

    def sft(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.sft import sft

        cfg = self.cfg
        prompt = cfg.student_system_prompt
        sft_cfg = cfg.sft.model_copy(
            update={"system_prompt": None if prompt == "agent" else prompt, "seed": cfg.seed}
        )
        if not sft_cfg.progress or not cfg.progress:
            sft_cfg = sft_cfg.model_copy(update={"progress": False})
        path = sft(
            self.root / "filter" / "train.jsonl",
            model=cfg.student,
            out_dir=self.root / "student",
            config=sft_cfg,
            work_dir=folder / "work",
        )
        meta = json.loads((path / "slmkit_student.json").read_text())
        keep = (
            "base",
            "method",
            "rows",
            "agent_tokens",
            "steps",
            "train_loss",
            "losses",
            "train_s",
        )
        return {"student": str(path), **{k: meta.get(k) for k in keep}}

    # ------------------------------------------------------------------ rl

    def rl_config(self) -> Any:
        """The RL stage's options: the SFT student as the policy, the run's seed."""
        cfg = self.cfg
        assert cfg.rl is not None
        update: dict[str, Any] = {
            "model": str(self.root / "student"),
            "run_dir": self.root / "rl" / "run",
            "seed": cfg.seed,
            "eval_n": 0,  # the distill eval measures the policy, with the other two
            "progress": cfg.progress and cfg.rl.progress,
        }
        if "env" not in cfg.rl.model_fields_set:
            update.update(env=cfg.train_envs[0], env_options=cfg.env_options)
        if "agent_options" not in cfg.rl.model_fields_set:
            update["agent_options"] = cfg.agent_options
        return cfg.rl.model_copy(update=update)

    def rl(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.rl import rl

        if self.cfg.rl is None:
            return {"skipped": "no RL stage (agentctl distill --rl adds one)"}
        result = rl(self.rl_config(), until="grpo", announce=self.say)
        out = result.outputs("grpo")
        return {
            "policy": str(result.policy),
            "env": self.rl_config().env,
            **{k: out.get(k) for k in ("steps", "rewards", "tasks", "train_s")},
        }

    # ------------------------------------------------------------------ eval

    def eval_agent_options(self) -> dict[str, Any]:
        """The agent options of both evaluations.

        A teacher run with a first-thought prefix (fixed or generated) starts every
        trajectory with a thought,
        so the student learns to write one on step 1; ``first_thought=""`` lets the grammar
        take that thought (any text) on step 1 and no other, for before and after alike.
        """
        opts = dict(self.cfg.agent_options)
        if self.cfg.first_thought_prefix is not None or self.cfg.generate_first_thought:
            opts.setdefault("first_thought", "")
        return opts

    def eval(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.evaluation import eval_before_after
        from slmkit.training.sft import resolve_student

        cfg = self.cfg
        policy = self.root / "rl" / "run" / "policy"
        return eval_before_after(
            folder,
            env=cfg.eval_env,
            split=cfg.eval_split,
            n=cfg.eval_n,
            base=resolve_student(cfg.student),
            trained=self.root / "student",
            more={"after_rl": policy} if cfg.rl is not None else None,
            env_options=cfg.env_options,
            agent_options=self.eval_agent_options(),
            backend=cfg.eval_backend,
            workers=cfg.eval_workers,
            progress=cfg.progress,
            say=self.say,
        )

    # ------------------------------------------------------------------ report

    def report(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.report import write_distill_report

        statuses = {name: st for name, st in RunFolder(self.root, STAGES).overview()}
        md, png = write_distill_report(self.root, self.cfg, statuses)
        return {"markdown": str(md), "chart": str(png)}


def _depends(cfg: DistillConfig) -> dict[str, Any]:
    """The options each stage reads (its fingerprint; see :mod:`slmkit.training.stages`)."""
    c = cfg.model_dump(mode="json")

    def pick(*keys: str) -> dict[str, Any]:
        return {k: c[k] for k in keys}

    return {
        "collect": pick(
            "train_envs", "train_split", "train_n", "env_options", "teacher", "teacher_agent",
            "teacher_options", "samples", "sample_temperature", "first_thought_prefix",
            "generate_first_thought", "agent_options", "seed",
        ),
        "filter": pick("keep_recovered_errors", "max_per_task"),
        "sft": {
            **pick("student", "student_system_prompt", "seed"),
            "sft": {k: v for k, v in c["sft"].items() if k not in ("progress", "report_to")},
        },
        "rl": {
            **pick("train_envs", "env_options", "agent_options", "seed"),
            "rl": None if c["rl"] is None else {
                k: v for k, v in c["rl"].items() if k not in ("progress", "report_to")
            },
        },
        "eval": {
            **pick(
                "eval_env", "eval_split", "eval_n", "env_options", "agent_options", "eval_backend"
            ),
            "rl": c["rl"] is not None,
        },
        "report": {},
    }  # fmt: skip


def distill(
    config: DistillConfig | None = None,
    *,
    start: str | None = None,
    until: str | None = None,
    force: bool = False,
    announce: Announce = silent,
) -> DistillResult:
    """Run (or resume) a distillation; return where it stands.

    Args:
        config: the run's options (``None``: the laptop default).
        start: rerun from this stage (``--from``).
        until: stop after this stage.
        force: rerun every stage from the first (or from ``start``).
        announce: called with ``(stage, message)`` for progress lines.

    A run folder that exists is resumed. Its stored options are compared stage by stage:
    a stage whose options changed is run again, with everything after it.
    """
    cfg, root = open_run(config or DistillConfig(), "distill")
    pipe = _Pipeline(cfg, root, announce)
    deps = _depends(cfg)
    stages = [
        Stage("collect", pipe.collect, deps["collect"]),
        Stage("filter", pipe.filter, deps["filter"]),
        Stage("sft", pipe.sft, deps["sft"]),
        Stage("rl", pipe.rl, deps["rl"]),
        Stage("eval", pipe.eval, deps["eval"]),
        Stage("report", pipe.report, deps["report"]),
    ]
    done = run_stages(
        RunFolder(root, STAGES), stages, start=start, until=until, force=force, announce=announce
    )
    return DistillResult(root, done)
