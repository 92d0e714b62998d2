"""``agentctl simulate | collect | eval``: environments, collection and evaluation.

Thin commands over :mod:`slmkit.simulators`: flags fill the same pydantic configs the
Python API takes (``--config x.yaml`` fills them from a file; a flag given on the command
line wins over the file), the library runs, rich renders the result::

    agentctl collect --env math --agent tool --model llamacpp:smollm2 --limit 50 --out runs.jsonl
    agentctl eval --env bfcl --limit 20 --out eval.jsonl
    agentctl eval compare eval_a.summary.json eval_b.summary.json
    agentctl simulate fidelity --env tau2-retail --limit 3
    agentctl simulate amplify --tools tools.json --seeds seeds.jsonl --count 1000 --out trajs.jsonl

``--env-opt``/``--agent-opt``/``--model-opt KEY=VALUE`` pass environment, agent
(:class:`~slmkit.agents.AgentConfig`) and backend options; VALUE is read as JSON when it
parses (``max_steps=4``, ``policy="none"``), else as a string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
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
from slmkit.models import DEFAULT_SPEC, SlmkitError

__all__ = ["register"]

console = Console()
err = Console(stderr=True)

EnvOpt = Annotated[
    str, typer.Option("--env", "-e", help="environment, e.g. math, bfcl:simple, tau2-retail")
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model spec, e.g. llamacpp:smollm2")]
AgentOpt = Annotated[
    str | None,
    typer.Option("--agent", "-a", help="tool | code | rag | gold (default: the env's own)"),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(help="concurrent episodes, their model calls decoded together (per replica)"),
]
BackendOpt = Annotated[str, typer.Option(help="local (threads) | ray (Ray Data over replicas)")]
ReplicasOpt = Annotated[int, typer.Option(min=1, help="ray backend: model replicas")]
ReplicaGpusOpt = Annotated[float, typer.Option(help="ray backend: GPUs per replica")]


_OPTS = {"env_opt": "env_options", "agent_opt": "agent_options", "model_opt": "model_options"}
"""Flags named unlike the config field they fill."""


def _env_options(
    env: str, model: str, pairs: list[str] | None, agent: str | None
) -> dict[str, Any]:
    opts = parse_kv(pairs)
    if env.startswith("tau2") and agent != "gold" and "user_model" not in opts:
        opts["user_model"] = model  # the customer is played by a model, as in tau2
    return opts


def _summary_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for k, v in rows.items():
        table.add_row(k, v if isinstance(v, str) else json.dumps(v, default=str))
    return table


def register(app: typer.Typer) -> None:
    """Add ``simulate`` (``fidelity``, ``amplify``, ``tools``), ``collect`` and ``eval``."""
    simulate_app = typer.Typer(
        help="LLM-simulated environments: fidelity, amplification.", no_args_is_help=True
    )
    eval_app = typer.Typer(help="Evaluate an agent on an environment; compare two results.")
    app.add_typer(simulate_app, name="simulate")
    app.add_typer(eval_app, name="eval", invoke_without_command=True)

    @app.command("collect", context_settings=old_spellings(n="--limit"))
    def collect_cmd(
        ctx: typer.Context,
        env: EnvOpt = "math",
        agent: AgentOpt = None,
        model: ModelOpt = DEFAULT_SPEC,
        limit: Annotated[int | None, typer.Option(help="the first N tasks of the split")] = None,
        split: Annotated[str, typer.Option(help="task split")] = "train",
        samples: Annotated[
            int, typer.Option(min=1, help="attempts per task (rejection sampling)")
        ] = 1,
        sample_temperature: Annotated[
            float, typer.Option(help="temperature of the attempts")
        ] = 0.7,
        first_thought_prefix: Annotated[
            str | None, typer.Option(help="start of the first thought")
        ] = None,
        generate_first_thought: Annotated[
            bool, typer.Option(help="the first thought comes from a reasoning prompt")
        ] = False,
        keep: Annotated[str, typer.Option(help="all | correct")] = "correct",
        drop_parse_errors: Annotated[
            bool, typer.Option(help="drop runs with unparsable output")
        ] = True,
        drop_max_steps: Annotated[bool, typer.Option(help="drop runs cut off by max_steps")] = True,
        retry_errors: Annotated[bool, typer.Option(help="run tasks that raised again")] = False,
        workers: WorkersOpt = None,
        backend: BackendOpt = "local",
        replicas: ReplicasOpt = 1,
        replica_gpus: ReplicaGpusOpt = 0.0,
        price_prompt: Annotated[float, typer.Option(help="price per 1M prompt tokens")] = 0.0,
        price_completion: Annotated[
            float, typer.Option(help="price per 1M completion tokens")
        ] = 0.0,
        out: Annotated[
            Path, typer.Option("--out", "-o", help="output JSONL (resumed if it exists)")
        ] = Path("runs.jsonl"),
        env_opt: KvOpt = None,
        agent_opt: KvOpt = None,
        model_opt: KvOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Run an agent over an environment's tasks and write trajectories (resumable)."""
        from slmkit.simulators import CollectConfig, collect

        fields = {
            "env": env, "agent": agent, "model": model, "limit": limit, "split": split,
            "samples": samples, "sample_temperature": sample_temperature,
            "first_thought_prefix": first_thought_prefix,
            "generate_first_thought": generate_first_thought, "keep": keep,
            "drop_parse_errors": drop_parse_errors, "drop_max_steps": drop_max_steps,
            "retry_errors": retry_errors, "workers": workers, "backend": backend,
            "replicas": replicas, "replica_gpus": replica_gpus, "price_prompt": price_prompt,
            "price_completion": price_completion, "out": out,
            "env_opt": _env_options(env, model, env_opt, agent),
            "agent_opt": parse_kv(agent_opt), "model_opt": parse_kv(model_opt),
        }  # fmt: skip
        rename = {**_OPTS, "limit": "n"}
        cfg = load_config(CollectConfig, ctx, config, fields, command="collect", rename=rename)
        summary = collect(cfg)
        rows = summary.model_dump()
        who = cfg.agent if cfg.agent == "gold" else f"{cfg.agent}, {cfg.model}"
        console.print(_summary_table(f"collect {cfg.env} ({who})", rows))

    @eval_app.callback(invoke_without_command=True)
    def eval_cmd(
        ctx: typer.Context,
        env: Annotated[str | None, typer.Option("--env", "-e", help="environment")] = None,
        agent: AgentOpt = None,
        model: ModelOpt = DEFAULT_SPEC,
        split: Annotated[str, typer.Option(help="task split")] = "test",
        limit: Annotated[int | None, typer.Option(help="the first N tasks")] = None,
        workers: WorkersOpt = None,
        backend: BackendOpt = "local",
        replicas: ReplicasOpt = 1,
        replica_gpus: ReplicaGpusOpt = 0.0,
        price_prompt: Annotated[float, typer.Option(help="price per 1M prompt tokens")] = 0.0,
        price_completion: Annotated[
            float, typer.Option(help="price per 1M completion tokens")
        ] = 0.0,
        chart: Annotated[bool, typer.Option(help="write a PNG chart")] = True,
        out: Annotated[
            Path, typer.Option("--out", "-o", help="results JSONL (summary, .md, .png beside it)")
        ] = Path("eval.jsonl"),
        env_opt: KvOpt = None,
        agent_opt: KvOpt = None,
        model_opt: KvOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        """Evaluate an agent: success, schema-valid and executable-call rates, latency, cost."""
        if ctx.invoked_subcommand is not None:
            return
        from slmkit.simulators import EvalConfig, evaluate, metric_rows

        fields = {
            "env": env, "agent": agent, "model": model, "split": split, "limit": limit,
            "workers": workers, "backend": backend, "replicas": replicas,
            "replica_gpus": replica_gpus, "price_prompt": price_prompt,
            "price_completion": price_completion, "chart": chart, "out": out,
            "env_opt": _env_options(env or "", model, env_opt, agent),
            "agent_opt": parse_kv(agent_opt), "model_opt": parse_kv(model_opt),
        }  # fmt: skip
        merged = merge_config(ctx, config, fields, rename=_OPTS)
        if not merged.get("env"):
            raise SlmkitError(
                "agentctl eval needs --env", hint="e.g. agentctl eval --env math --limit 5"
            )
        cfg = validate_config(EvalConfig, merged, "eval", _OPTS)
        report = evaluate(cfg)
        table = Table(title=f"eval {report.env} / {report.agent} / {report.model} ({cfg.split})")
        table.add_column("metric", style="bold")
        table.add_column("value", justify="right")
        for row in metric_rows([report]):
            table.add_row(*row)
        console.print(table)
        for kind, path in report.files.items():
            err.print(f"[dim]{kind}: {path}[/]")

    @eval_app.command("compare")
    def eval_compare(
        a: Annotated[Path, typer.Argument(help="first result (.summary.json or .jsonl)")],
        b: Annotated[Path, typer.Argument(help="second result")],
    ) -> None:
        """Two evaluation results side by side, with the change and which is better."""
        from slmkit.simulators import compare_markdown, load_report

        console.print(Markdown(compare_markdown(load_report(a), load_report(b), (a.stem, b.stem))))

    @simulate_app.command(
        "fidelity",
        context_settings=old_spellings(max_output_tokens="--max-tokens", json="--json-out"),
    )
    def fidelity_cmd(
        env: EnvOpt = "tau2-retail",
        model: ModelOpt = DEFAULT_SPEC,
        split: Annotated[
            str, typer.Option(help="split whose tasks' gold calls are replayed")
        ] = "test",
        limit: Annotated[int, typer.Option(min=1, help="tasks to replay")] = 3,
        max_calls: Annotated[int | None, typer.Option(help="calls per task at most")] = None,
        rereads: Annotated[int, typer.Option(help="reads repeated per task (consistency)")] = 1,
        allow_errors: Annotated[bool, typer.Option(help="let the simulator answer errors")] = True,
        max_tokens: Annotated[int, typer.Option(help="budget of one simulated output")] = 384,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="write the Markdown report here")
        ] = None,
        json_out: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
        env_opt: KvOpt = None,
    ) -> None:
        """Replay real calls against the real tools and the simulator; report agreement."""
        from slmkit.simulators import (
            SimulatedEnvironment,
            fidelity_markdown,
            load_env,
            measure_fidelity,
        )

        real = load_env(env, split=split, **parse_kv(env_opt))
        sim = SimulatedEnvironment.from_environment(
            real, model=model, allow_errors=allow_errors, max_output_tokens=max_tokens
        )
        tasks = real.tasks(split, limit=limit).take(limit)
        with err.status("replaying calls...") as status:
            report = measure_fidelity(
                real,
                sim,
                tasks,
                max_calls=max_calls,
                rereads=rereads,
                on_call=lambda s: status.update(f"{s['task']}: {s['call']['name']}"),
            )
        md = fidelity_markdown(report)
        console.print(Markdown(md))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(md, encoding="utf-8")
        if json_out is not None:
            json_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")

    @simulate_app.command("amplify", context_settings=old_spellings(n="--count"))
    def amplify_cmd(
        ctx: typer.Context,
        tools: Annotated[Path, typer.Option(help="tools JSON file")],
        seeds: Annotated[Path, typer.Option(help="seed trajectories JSONL")],
        count: Annotated[int, typer.Option(min=1, help="trajectories to generate")] = 100,
        out: Annotated[
            Path, typer.Option("--out", "-o", help="output JSONL (resumed if it exists)")
        ] = Path("amplified.jsonl"),
        model: ModelOpt = DEFAULT_SPEC,
        domain: Annotated[str, typer.Option(help="domain text or a file with it")] = "",
        max_steps: Annotated[
            int, typer.Option(min=1, help="tool calls per trajectory at most")
        ] = 4,
        temperature: Annotated[float, typer.Option(help="sampling temperature")] = 0.8,
        seed: Annotated[int, typer.Option(help="sample i uses seed + i")] = 0,
        max_tokens: Annotated[int, typer.Option(help="token budget of one trajectory")] = 768,
        batch: Annotated[int, typer.Option(min=1, help="prompts per batch")] = 1,
        backend: Annotated[
            str, typer.Option(help="local (load --model) | ray (Ray Data + vLLM)")
        ] = "local",
        config: ConfigOpt = None,
    ) -> None:
        """Write new trajectories modelled on seeds (Simia-SFT), validated and repaired."""
        from slmkit.simulators import AmplifyConfig, amplify

        fields = {
            "tools": tools, "seeds": seeds, "count": count, "out": out, "model": model,
            "domain": domain, "max_steps": max_steps, "temperature": temperature,
            "seed": seed, "max_tokens": max_tokens, "batch": batch,
        }  # fmt: skip
        cfg = load_config(
            AmplifyConfig, ctx, config, fields, command="simulate amplify", rename={"count": "n"}
        )
        teacher = None
        if backend == "ray":
            from slmkit.simulators import RayDataModel

            teacher = RayDataModel(cfg.model.partition(":")[2] or cfg.model)
        elif backend != "local":
            raise SlmkitError(f"unknown backend {backend!r}", hint="local or ray")
        with err.status(f"amplifying {cfg.n} trajectories..."):
            summary = amplify(cfg, model=teacher)
        console.print(_summary_table(f"amplify -> {cfg.out}", summary.model_dump()))

    @simulate_app.command("tools")
    def tools_cmd(
        env: EnvOpt = "tau2-retail",
        out: Annotated[Path, typer.Option("--out", "-o", help="tools JSON file to write")] = Path(
            "tools.json"
        ),
        env_opt: KvOpt = None,
    ) -> None:
        """Export an environment's tool schemas (with output schemas) for simulation."""
        from slmkit.simulators import load_env, tools_to_json

        real = load_env(env, **parse_kv(env_opt))
        if not real.fixed_tools:
            raise SlmkitError(
                f"{real.name}'s tools change per task", hint="export a fixed-tool env"
            )
        tools = [t for t in real.tools() if t.name != "send_message_to_user"]
        writes = real.mutating_tools()
        declared = None if writes is None else {t.name: t.name in writes for t in tools}
        specs = tools_to_json(tools, declared)
        out.write_text(json.dumps(specs, indent=2, ensure_ascii=False), encoding="utf-8")
        err.print(f"wrote {len(specs)} tools to {out}")
