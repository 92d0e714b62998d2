"""``distill``: a teacher agent's verified trajectories -> a small student agent.

Stages, each in its own folder of the run (``runs/distill-<time>/``) with a status file
(:mod:`slmkit.training.stages`), resumable::

    collect   the teacher agent over the training tasks, ``samples`` attempts per task,
              the first one the environment verifies kept (rejection sampling)
    synth     with ``synth_per_seed`` set: new tasks the teacher writes from its verified
              runs, solved again the same way and kept when the checker accepts
              (:mod:`slmkit.simulators.synth`); skipped otherwise
    filter    correct, well-formed, ended on its own; recovered tool errors kept; no
              held-out task or near-duplicate of one, no repeated request
              (:mod:`slmkit.training.decontam`)
    sft       the student fine-tuned on them (:func:`~slmkit.training.sft`)
    rl        with ``rl`` set (``agentctl distill --rl``): GRPO from the SFT student on
              the training environment (:func:`~slmkit.training.rl`), its policy in
              ``<run>/rl/run/policy``; skipped otherwise
    eval      the student before and after (and after RL), on held-out tasks, with the
              metrics of ``agentctl eval`` (:func:`slmkit.simulators.evaluate`), and on
              a held-out family never trained on (``transfer_env``)
    curve     students on 25 % and 50 % of the data, evaluated the same way: the
              learning curve (:mod:`slmkit.training.curve`)
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


def _task_order(traj: Trajectory) -> tuple[str, str]:
    return str(traj.meta.get("task_id") or ""), traj.id


class _Pipeline:
    """The stage functions of one run (they share the config and the run folder)."""

    def __init__(self, cfg: DistillConfig, root: Path, say: Announce) -> None:
        self.cfg = cfg
        self.root = root
        self.say = say

    # ------------------------------------------------------------------ collect

    def collect_config(self, env: str, out: Path) -> Any:
        """How the teacher runs on ``env``'s tasks (the real ones and the written ones)."""
        from slmkit.simulators import CollectConfig

        cfg = self.cfg
        return CollectConfig(
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
            out=out,
            keep="all",
            drop_parse_errors=False,
            drop_max_steps=False,
            workers=cfg.collect_workers,
            progress=cfg.progress,
        )

    def teacher(self) -> Any:
        """The teacher model, its own copy (the caller closes it; a cached one may be
        shared), loaded for ``collect_workers`` concurrent episodes."""
        cfg = self.cfg
        options = {**batching_options(cfg.teacher, cfg.collect_workers or 1), **cfg.teacher_options}
        return load_model(cfg.teacher, cache=False, **options)

    def collect(self, folder: Path) -> dict[str, Any]:
        from slmkit.simulators import collect

        cfg = self.cfg
        model = None if cfg.teacher_agent == "gold" else self.teacher()
        summaries: dict[str, Any] = {}
        for env in cfg.train_envs:
            self.say("collect", f"{env} ({cfg.train_split}, {cfg.train_n or 'all'} tasks)")
            config = self.collect_config(env, folder / f"{_slug(env)}.jsonl")
            summaries[env] = collect(config, model=model).model_dump(mode="json")
        if model is not None:
            model.close()
        return {"teacher": cfg.teacher, "envs": summaries}

    # ------------------------------------------------------------------ synth

    def synth(self, folder: Path) -> dict[str, Any]:
        from slmkit.simulators import collect, load_env, write_tasks

        cfg = self.cfg
        if not cfg.synth_per_seed:
            return {"skipped": "no written tasks (synth_per_seed: 0)"}
        runs = {
            env: list(read_trajectories(self.root / "collect" / f"{_slug(env)}.jsonl"))
            for env in cfg.train_envs
        }
        examples = [t for env_runs in runs.values() for t in env_runs]  # every env's
        model = self.teacher()
        summaries: dict[str, Any] = {}
        try:
            for env, seeds in runs.items():
                catalog = load_env(env, split=cfg.train_split, **cfg.env_options)
                try:
                    self.say("synth", f"{env}: writing {cfg.synth_per_seed} per verified run")
                    written = write_tasks(
                        seeds,
                        catalog,
                        model,
                        per_seed=cfg.synth_per_seed,
                        out=folder / "tasks" / f"{_slug(env)}.jsonl",
                        temperature=cfg.synth_temperature,
                        seed=cfg.seed,
                        batch=cfg.collect_workers or 1,
                        examples=examples,
                    )
                finally:
                    catalog.close()
                self.say("synth", f"{env}: solving {len(written.tasks)} written tasks")
                config = self.collect_config(env, folder / f"{_slug(env)}.jsonl")
                solved = collect(config, model=model, tasks=written.tasks)
                summaries[env] = {
                    "written": len(written.tasks),
                    "write_attempts": written.attempts,
                    "write_dropped": written.dropped,
                    "write_tokens": written.prompt_tokens + written.completion_tokens,
                    **solved.model_dump(mode="json"),
                }
        finally:
            model.close()
        return {"teacher": cfg.teacher, "per_seed": cfg.synth_per_seed, "envs": summaries}

    # ------------------------------------------------------------------ filter

    def filter(self, folder: Path) -> dict[str, Any]:
        # Runs in task order, not in the order the collect workers finished them: the
        # training order decides the batches, and the same teacher data trained in two
        # file orders gave students of 45 and 40 of 120 held-out items.
        # Per environment, real and written runs in task order (a written task's id
        # extends its seed's, so it sorts among them).
        per_env: dict[str, list[Trajectory]] = {}
        for stage in ("collect", "synth") if self.cfg.synth_per_seed else ("collect",):
            for path in (self.root / stage).glob("*.jsonl"):
                if not path.name.endswith(".ledger.jsonl"):
                    per_env.setdefault(path.name, []).extend(read_trajectories(path))
        runs = [t for name in sorted(per_env) for t in sorted(per_env[name], key=_task_order)]
        from slmkit.training.decontam import HeldOut, decontaminate

        cfg = self.cfg
        limit = max((n for n in (cfg.eval_n, cfg.transfer_n) if n is not None), default=None)
        held = HeldOut.from_envs(
            [cfg.eval_env, *([cfg.transfer_env] if cfg.transfer_env else [])],
            cfg.eval_split,
            cfg.env_options,
            limit=limit,
        )
        clean = decontaminate(runs, held, threshold=cfg.near_duplicate)
        result = filter_trajectories(
            clean.kept,
            keep_recovered_errors=cfg.keep_recovered_errors,
            max_per_task=cfg.max_per_task,
        )
        result.dropped.update(clean.dropped)
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
            "held_out_matches": clean.matches,
            "held_out_limit": limit,
            "train_file": str(out),
        }

    # ------------------------------------------------------------------ sft

    def sft_config(self) -> Any:
        """The SFT options of every student of the run (the full one and the curve's)."""
        cfg = self.cfg
        prompt = cfg.student_system_prompt
        sft_cfg = cfg.sft.model_copy(
            update={"system_prompt": None if prompt == "agent" else prompt, "seed": cfg.seed}
        )
        if not sft_cfg.progress or not cfg.progress:
            sft_cfg = sft_cfg.model_copy(update={"progress": False})
        return sft_cfg

    def sft(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.sft import sft

        path = sft(
            self.root / "filter" / "train.jsonl",
            model=self.cfg.student,
            out_dir=self.root / "student",
            config=self.sft_config(),
            work_dir=folder / "work",
        )
        meta = json.loads((path / "slmkit_student.json").read_text())
        keep = (
            "base",
            "method",
            "rows",
            "val_rows",
            "val_losses",
            "best_step",
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

    def _evaluate(
        self, folder: Path, env: str, n: int | None, *, base: bool, trained: Path, **more: Path
    ) -> dict[str, Any]:
        from slmkit.training.evaluation import eval_before_after
        from slmkit.training.sft import resolve_student

        cfg = self.cfg
        self._held_out_checked(env, n)
        return eval_before_after(
            folder,
            env=env,
            split=cfg.eval_split,
            n=n,
            base=resolve_student(cfg.student) if base else None,
            trained=trained,
            more=more,
            env_options=cfg.env_options,
            agent_options=self.eval_agent_options(),
            backend=cfg.eval_backend,
            workers=cfg.eval_workers,
            progress=cfg.progress,
            say=self.say,
        )

    def _held_out_checked(self, env: str, n: int | None) -> None:
        """Refuse held-out tasks the filter never checked the training data against.

        A procedural (unbounded) environment's held-out tasks are its first N, so the
        filter checks the first ``max(eval_n, transfer_n)``; those are not in the filter's
        options (a larger ``--eval-limit`` must not retrain a BFCL student, whose whole
        test split is checked), so a larger evaluation of such an environment would
        count tasks that may have near-duplicates in the training data.
        """
        from slmkit.simulators import load_env

        catalog = load_env(env, split=self.cfg.eval_split, **self.cfg.env_options)
        try:
            unbounded = catalog.unbounded
        finally:
            catalog.close()
        if not unbounded:
            return
        status = RunFolder(self.root, STAGES).status("filter")
        checked = (status.outputs if status is not None else {}).get("held_out_limit")
        if checked is None or n is None or n > checked:
            against = f"its first {checked}" if checked is not None else "an unrecorded number"
            raise TrainingError(
                f"{env} makes its held-out tasks without end, and the filter checked the "
                f"training data against {against}; evaluating {n or 'all'} would count "
                "tasks it never checked",
                hint="rerun from the filter with this --eval-limit: --from filter (the "
                "student is trained again on the checked data)",
            )

    def eval(self, folder: Path) -> dict[str, Any]:
        cfg = self.cfg
        student = self.root / "student"
        rl = {"after_rl": self.root / "rl" / "run" / "policy"} if cfg.rl is not None else {}
        out = self._evaluate(folder, cfg.eval_env, cfg.eval_n, base=True, trained=student, **rl)
        if cfg.transfer_env:
            out["transfer"] = self._evaluate(
                folder / "transfer", cfg.transfer_env, cfg.transfer_n, base=True, trained=student
            )
        return out

    # ------------------------------------------------------------------ curve

    def curve(self, folder: Path) -> dict[str, Any]:
        from slmkit.training.curve import learning_curve

        if not self.cfg.curve:
            return {"skipped": "no learning curve (curve: [])"}
        return learning_curve(
            folder,
            self.cfg,
            train_file=self.root / "filter" / "train.jsonl",
            sft_config=self.sft_config(),
            eval_one=lambda sub, student: self._evaluate(
                sub, self.cfg.eval_env, self.cfg.eval_n, base=False, trained=student
            )["after"],
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
        "synth": pick("synth_per_seed", "synth_temperature"),
        "filter": pick(
            "keep_recovered_errors", "max_per_task", "eval_env", "eval_split", "transfer_env",
            "near_duplicate",
        ),
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
                "eval_env", "eval_split", "eval_n", "env_options", "agent_options",
                "eval_backend", "transfer_env", "transfer_n",
            ),
            "rl": c["rl"] is not None,
        },
        "curve": pick(
            "curve", "eval_env", "eval_split", "eval_n", "env_options", "agent_options",
            "eval_backend",
        ),
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
        Stage("synth", pipe.synth, deps["synth"], enabled=cfg.synth_per_seed > 0),
        Stage("filter", pipe.filter, deps["filter"]),
        Stage("sft", pipe.sft, deps["sft"]),
        Stage("rl", pipe.rl, deps["rl"]),
        Stage("eval", pipe.eval, deps["eval"]),
        Stage("curve", pipe.curve, deps["curve"]),
        Stage("report", pipe.report, deps["report"]),
    ]
    done = run_stages(
        RunFolder(root, STAGES), stages, start=start, until=until, force=force, announce=announce
    )
    return DistillResult(root, done)
