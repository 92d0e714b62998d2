"""``agentctl distill | rl``: teacher -> student distillation and GRPO, as resumable runs.

Thin commands over :mod:`slmkit.training`: flags fill :class:`~slmkit.training.DistillConfig`
/ :class:`~slmkit.training.RlConfig` (``--config x.yaml`` fills them from a file; a flag
given on the command line wins), the library runs the stages, rich shows progress::

    agentctl distill                                   # the laptop default, ~25 min on 2 cores
    agentctl distill --teacher openai:http://gpu:8000/v1#Qwen2.5-7B-Instruct --samples 1 \\
        --student ~/models/Qwen2.5-0.5B-Instruct --train-limit 500 --eval-limit 200
    agentctl distill --run-dir runs/distill-20250101-120000        # resume
    agentctl distill --run-dir runs/distill-... --from sft         # redo sft, eval, report
    agentctl distill status runs/distill-...
    agentctl distill --rl --rl-opt max_steps=30                  # SFT, then GRPO from the student
    agentctl rl --env bfcl:simple --model runs/distill-.../student --max-steps 50

``--sft-opt``/``--agent-opt``/``--env-opt``/``--teacher-opt KEY=VALUE`` pass SFT,
agent (:class:`~slmkit.agents.AgentConfig`), environment and teacher-backend options;
VALUE is read as JSON when it parses.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from slmkit.apps.flags import (
    ConfigOpt,
    KvOpt,
    load_config,
    merge_config,
    old_spellings,
    parse_kv,
    validate_config,
)
from slmkit.models import SlmkitError
from slmkit.training import CONFIG_FILE, DistillConfig, RlConfig

__all__ = ["register"]

_D = DistillConfig().model_dump()  # CLI defaults come from the config's own defaults
_R = RlConfig().model_dump()
_PRESETS = {"laptop": "distill", "full": "distill-full", "reference": "distill-reference"}
"""``--preset`` name -> the shipped config it stands for (``slmkit.training.config_file``)."""

console = Console()
err = Console(stderr=True)


def _resumed_config(config: Path | None, run_dir: Path | None) -> Path | None:
    """The config file a command reads: ``--config`` (or ``--preset``), else the
    ``config.json`` of the run ``--run-dir`` resumes, so that ``--run-dir X`` alone goes on
    with X as it was started (flags given still win) instead of the defaults, which would
    rerun every stage whose options differ."""
    if config is None and run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        return run_dir / CONFIG_FILE
    return config


FromOpt = Annotated[str | None, typer.Option("--from", help="rerun from this stage")]
UntilOpt = Annotated[str | None, typer.Option(help="stop after this stage")]
ForceOpt = Annotated[bool, typer.Option(help="rerun every stage (from --from if given)")]


def _announce(stage: str, message: str) -> None:
    err.print(f"[bold cyan]{stage:>8}[/] {message}", highlight=False)


def _status_table(title: str, overview: list[tuple[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("stage", "state", "attempts", "wall time", "finished", "summary / error"):
        table.add_column(col)
    for name, st in overview:
        if st is None:
            table.add_row(name, "[dim]not started[/]", "", "", "", "")
            continue
        color = {"done": "green", "running": "yellow", "failed": "red"}[st.state]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.finished)) if st.finished else ""
        detail = st.error or json.dumps(_brief(st.outputs), default=str)
        table.add_row(
            name,
            f"[{color}]{st.state}[/]",
            str(st.attempts),
            f"{st.wall_s:.0f}s",
            when,
            detail[:90],
        )
    return table


def _brief(outputs: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a stage's outputs (the full ones are in its status.json)."""
    out: dict[str, Any] = {}
    for key, value in outputs.items():
        if isinstance(value, dict) and "success_rate" in value:
            rate = value.get("success_rate")
            out[key] = None if rate is None else f"{100 * rate:.1f}%"
        elif isinstance(value, int | float | str) and key not in ("train_file",):
            out[key] = value
    return out


def _print_result(root: Path, outputs: dict[str, Any]) -> None:
    before, after = outputs.get("before"), outputs.get("after")
    if isinstance(before, dict) and isinstance(after, dict):

        def pct(r: dict[str, Any]) -> str:
            x = r.get("success_rate")
            return "n/a" if x is None else f"{100 * x:.1f}% ({r.get('successes')}/{r.get('tasks')})"

        rl = outputs.get("after_rl")
        after_rl = f"   after RL: {pct(rl)}" if isinstance(rl, dict) else ""
        console.print(f"success before: {pct(before)}   after: {pct(after)}{after_rl}")
    report = root / "report.md"
    if report.is_file():
        console.print(f"report: [bold]{report}[/]")


def register(app: typer.Typer) -> None:
    """Add ``distill`` (with ``distill status RUN``) and ``rl`` (with ``rl status RUN``)."""
    distill_app = typer.Typer(help="Distill a teacher agent into a small student agent.")
    rl_app = typer.Typer(help="GRPO with TRL over an slmkit environment.")
    app.add_typer(
        distill_app,
        name="distill",
        invoke_without_command=True,
        context_settings=old_spellings(train_n="--train-limit", eval_n="--eval-limit"),
    )
    app.add_typer(
        rl_app,
        name="rl",
        invoke_without_command=True,
        context_settings=old_spellings(
            n="--limit", eval_n="--eval-limit", max_completion_length="--max-tokens"
        ),
    )

    @distill_app.callback(invoke_without_command=True)
    def distill_cmd(
        ctx: typer.Context,
        run_dir: Annotated[
            Path | None, typer.Option(help="run folder (resumed if it exists)")
        ] = None,
        runs_root: Annotated[Path, typer.Option(help="where new run folders go")] = Path("runs"),
        train_env: Annotated[
            list[str] | None, typer.Option(help="training environment (repeatable)")
        ] = None,
        train_split: Annotated[str, typer.Option(help="split collected on")] = "train",
        train_limit: Annotated[
            int | None, typer.Option(help="the first N tasks of each training environment")
        ] = _D["train_n"],
        eval_env: Annotated[str, typer.Option(help="held-out environment")] = _D["eval_env"],
        transfer_env: Annotated[
            str | None, typer.Option(help="held-out family never trained on ('' for none)")
        ] = _D["transfer_env"],
        eval_split: Annotated[str, typer.Option(help="held-out split")] = "test",
        eval_limit: Annotated[
            int | None, typer.Option(help="the first N held-out tasks (None: all)")
        ] = _D["eval_n"],
        teacher: Annotated[str, typer.Option(help="teacher model spec")] = _D["teacher"],
        teacher_agent: Annotated[str, typer.Option(help="tool | gold")] = "tool",
        samples: Annotated[int, typer.Option(min=1, help="teacher attempts per task")] = _D[
            "samples"
        ],
        sample_temperature: Annotated[float, typer.Option(help="temperature of attempts")] = 0.7,
        first_thought_prefix: Annotated[
            str | None, typer.Option(help="the teacher's first thought starts with this")
        ] = None,
        generate_first_thought: Annotated[
            bool, typer.Option(help="the teacher's first thought comes from a reasoning prompt")
        ] = False,
        synth_per_seed: Annotated[
            int,
            typer.Option(
                min=0,
                help="tasks the teacher writes from each verified run, solved again and kept "
                "when the checker accepts (0: none)",
            ),
        ] = _D["synth_per_seed"],
        synth_temperature: Annotated[float, typer.Option(help="temperature of written tasks")] = _D[
            "synth_temperature"
        ],
        student: Annotated[str, typer.Option(help="student: HF folder or smollm2")] = _D["student"],
        student_system_prompt: Annotated[
            str, typer.Option(help="agent | short | a header text for the student's prompt")
        ] = "agent",
        keep_recovered_errors: Annotated[
            bool, typer.Option(help="keep successful runs with a failed tool call")
        ] = True,
        max_per_task: Annotated[int, typer.Option(min=1, help="runs kept per task")] = 1,
        eval_backend: Annotated[str, typer.Option(help="transformers | llamacpp")] = _D[
            "eval_backend"
        ],
        collect_workers: Annotated[
            int | None, typer.Option(help="concurrent teacher episodes (batched decoding)")
        ] = _D["collect_workers"],
        eval_workers: Annotated[
            int | None, typer.Option(help="concurrent eval episodes (batched decoding)")
        ] = _D["eval_workers"],
        preset: Annotated[
            str | None,
            typer.Option(
                help="laptop (the defaults) | full (all training tasks, more attempts, every "
                "held-out task) | reference (no teacher model: the environment's reference "
                "actions of every training task): a shipped config, used when --config is not "
                "given"
            ),
        ] = None,
        seed: Annotated[int, typer.Option(help="seed")] = 0,
        progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
        method: Annotated[str | None, typer.Option(help="SFT: lora | full")] = None,
        epochs: Annotated[float | None, typer.Option(help="SFT epochs")] = None,
        lr: Annotated[float | None, typer.Option(help="SFT learning rate")] = None,
        lora_r: Annotated[int | None, typer.Option(help="SFT LoRA rank")] = None,
        sft_max_steps: Annotated[int | None, typer.Option(help="SFT optimizer steps")] = None,
        rl: Annotated[
            bool, typer.Option("--rl", help="GRPO from the SFT student, then eval all three")
        ] = False,
        rl_opt: KvOpt = None,
        start: FromOpt = None,
        until: UntilOpt = None,
        force: ForceOpt = False,
        sft_opt: KvOpt = None,
        agent_opt: KvOpt = None,
        env_opt: KvOpt = None,
        teacher_opt: KvOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Teacher agent -> verified trajectories -> SFT student -> before/after report."""
        if ctx.invoked_subcommand is not None:
            return
        from slmkit.training import config_file, distill

        if preset is not None and config is None:
            if preset not in _PRESETS:
                raise SlmkitError(
                    f"unknown preset {preset!r}", hint="use one of: " + ", ".join(_PRESETS)
                )
            config = config_file(_PRESETS[preset])
        config = _resumed_config(config, run_dir)

        fields: dict[str, Any] = {
            "run_dir": run_dir, "runs_root": runs_root,
            "train_env": train_env or list(_D["train_envs"]),
            "train_split": train_split, "train_limit": train_limit, "eval_env": eval_env,
            "transfer_env": transfer_env or None,
            "eval_split": eval_split, "eval_limit": eval_limit, "teacher": teacher,
            "teacher_agent": teacher_agent, "samples": samples,
            "sample_temperature": sample_temperature,
            "first_thought_prefix": first_thought_prefix,
            "generate_first_thought": generate_first_thought,
            "synth_per_seed": synth_per_seed, "synth_temperature": synth_temperature,
            "student": student,
            "student_system_prompt": student_system_prompt,
            "keep_recovered_errors": keep_recovered_errors, "max_per_task": max_per_task,
            "eval_backend": eval_backend, "collect_workers": collect_workers,
            "eval_workers": eval_workers, "seed": seed,
            "progress": progress, "agent_opt": parse_kv(agent_opt),
            "env_opt": parse_kv(env_opt), "teacher_opt": parse_kv(teacher_opt),
        }  # fmt: skip
        rename = {"train_env": "train_envs", "train_limit": "train_n", "eval_limit": "eval_n",
                  "agent_opt": "agent_options", "env_opt": "env_options",
                  "teacher_opt": "teacher_options"}  # fmt: skip
        merged = merge_config(ctx, config, fields, rename)
        sft_fields = {"method": method, "epochs": epochs, "learning_rate": lr,
                      "lora_r": lora_r, "max_steps": sft_max_steps}  # fmt: skip
        merged["sft"] = {  # the file's fields over distill's SFT defaults, then flags
            **dict(merged.get("sft") or {}),
            **{k: v for k, v in sft_fields.items() if v is not None},
            **parse_kv(sft_opt),
        }
        if rl or rl_opt:  # an rl stage: the config file's options, then --rl-opt KEY=VALUE
            merged["rl"] = {**dict(merged.get("rl") or {}), **parse_kv(rl_opt)}
        cfg = validate_config(DistillConfig, merged, "distill", rename)
        result = distill(cfg, start=start, until=until, force=force, announce=_announce)
        console.print(f"run: [bold]{result.run_dir}[/]")
        _print_result(result.run_dir, result.outputs("eval"))

    @distill_app.command("status")
    def distill_status_cmd(
        run: Annotated[Path, typer.Argument(help="a run folder, e.g. runs/distill-...")],
    ) -> None:
        """Show where a distillation run stands, stage by stage."""
        from slmkit.training import distill_status

        console.print(_status_table(str(run), distill_status(run)))

    @rl_app.callback(invoke_without_command=True)
    def rl_cmd(
        ctx: typer.Context,
        env: Annotated[str, typer.Option("--env", "-e", help="environment")] = "bfcl:simple",
        model: Annotated[
            str, typer.Option("--model", "-m", help="policy: HF folder, smollm2, transformers:")
        ] = "smollm2",
        run_dir: Annotated[
            Path | None, typer.Option(help="run folder (resumed if it exists)")
        ] = None,
        runs_root: Annotated[Path, typer.Option(help="where new run folders go")] = Path("runs"),
        split: Annotated[str, typer.Option(help="training split")] = "train",
        limit: Annotated[int | None, typer.Option(help="the first N training tasks")] = _R["n"],
        rollout: Annotated[str, typer.Option(help="agent | trl")] = "agent",
        num_generations: Annotated[int, typer.Option(min=2, help="rollouts per task")] = _R[
            "num_generations"
        ],
        max_steps: Annotated[int, typer.Option(min=1, help="GRPO steps")] = _R["max_steps"],
        batch_size: Annotated[int | None, typer.Option(help="rollouts per device step")] = None,
        lr: Annotated[float | None, typer.Option(help="learning rate")] = None,
        beta: Annotated[float, typer.Option(help="KL coefficient")] = 0.04,
        temperature: Annotated[float, typer.Option(help="rollout temperature")] = 1.0,
        max_tokens: Annotated[int, typer.Option(help="tokens of one rollout's completion")] = 256,
        method: Annotated[str, typer.Option(help="lora | full")] = "lora",
        use_vllm: Annotated[
            bool | None, typer.Option(help="colocated vLLM generation (default: on GPU)")
        ] = None,
        eval_limit: Annotated[
            int, typer.Option(help="the first N held-out tasks, before and after (0: skip)")
        ] = 0,
        seed: Annotated[int, typer.Option(help="seed")] = 0,
        progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
        start: FromOpt = None,
        until: UntilOpt = None,
        force: ForceOpt = False,
        agent_opt: KvOpt = None,
        env_opt: KvOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """GRPO on an environment: rollouts are agent episodes, rewards the env's."""
        if ctx.invoked_subcommand is not None:
            return
        from slmkit.training import rl

        config = _resumed_config(config, run_dir)
        fields: dict[str, Any] = {
            "env": env, "model": model, "run_dir": run_dir, "runs_root": runs_root,
            "split": split, "limit": limit, "rollout": rollout,
            "num_generations": num_generations,
            "max_steps": max_steps, "batch_size": batch_size, "lr": lr,
            "beta": beta, "temperature": temperature,
            "max_tokens": max_tokens, "method": method,
            "use_vllm": use_vllm, "eval_limit": eval_limit, "seed": seed, "progress": progress,
            "agent_opt": parse_kv(agent_opt), "env_opt": parse_kv(env_opt),
        }  # fmt: skip
        rename = {"lr": "learning_rate", "limit": "n", "eval_limit": "eval_n",
                  "max_tokens": "max_completion_length", "agent_opt": "agent_options",
                  "env_opt": "env_options"}  # fmt: skip
        cfg = load_config(RlConfig, ctx, config, fields, command="rl", rename=rename)
        result = rl(cfg, start=start, until=until, force=force, announce=_announce)
        console.print(f"run: [bold]{result.run_dir}[/]  policy: [bold]{result.policy}[/]")
        rewards = result.outputs("grpo").get("rewards") or []
        if rewards:
            console.print("mean reward per logged step: " + " ".join(f"{r:.2f}" for r in rewards))
        _print_result(result.run_dir, result.outputs("eval"))

    @rl_app.command("status")
    def rl_status_cmd(
        run: Annotated[Path, typer.Argument(help="a run folder, e.g. runs/rl-...")],
    ) -> None:
        """Show where an RL run stands, stage by stage."""
        from slmkit.training import RL_STAGES, RunFolder

        console.print(_status_table(str(run), RunFolder(run, RL_STAGES).overview()))
