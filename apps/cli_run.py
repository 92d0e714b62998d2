"""``agentctl run``: run a ToolAgent (or a CodeAgent with ``--code``) on one task.

Steps print live as the agent takes them; the answer and the run's metrics follow.
``--json`` prints the whole :class:`~slmkit.agents.RunResult` instead. Every flag maps
to a field of :class:`~slmkit.agents.AgentConfig` (or ``CodeAgentConfig``); ``--config``
reads the same fields from a YAML file, and flags given on the command line win.
Runs are checkpointed: ``--thread ID`` names the run, and the same command with the same
id continues it after a crash or Ctrl-C instead of starting over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from slmkit.agents import (
    AgentConfig,
    CodeAgent,
    CodeAgentConfig,
    RagAgent,
    Router,
    RouterConfig,
    RunResult,
    StepEvent,
    ToolAgent,
    with_options,
)
from slmkit.apps.flags import ConfigOpt, merge_config, old_spellings
from slmkit.models import DEFAULT_SPEC, ChatModel, SlmkitError, load_model
from slmkit.tools import Tool, ToolCall, calculator, python_tool

__all__ = ["build_tools", "register", "run"]

TOOL_NAMES = ("calculator", "python", "search")

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run", context_settings=old_spellings(first_thought="--first-thought-prefix"))(run)


def build_tools(
    names: list[str], *, model: ChatModel, index: Path | None, code: bool
) -> list[Tool]:
    """The tools named on the command line (``python`` is implicit for a CodeAgent)."""
    tools: list[Tool] = []
    for name in names:
        if name == "calculator":
            tools.append(calculator)
        elif name == "python":
            if not code:
                tools.append(python_tool())
        elif name == "search":
            if index is None:
                raise SlmkitError(
                    "the search tool needs an index", hint="pass --index DIR (see agentctl index)"
                )
            from slmkit.retrieval import Index

            rag = RagAgent(Index.load(index), model, checkpoint="none")
            tools.append(rag.as_tool())
        else:
            raise SlmkitError(f"unknown tool {name!r}", hint=f"choose from {', '.join(TOOL_NAMES)}")
    return tools


def run(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="the task for the agent")],
    model: Annotated[str, typer.Option("--model", "-m", help="model spec")] = DEFAULT_SPEC,
    tools: Annotated[
        str, typer.Option(help=f"comma-separated tools: {', '.join(TOOL_NAMES)}")
    ] = "calculator",
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="index folder for the search tool")
    ] = None,
    code: Annotated[
        bool, typer.Option("--code", help="actions are Python code (CodeAgent)")
    ] = False,
    sample_k: Annotated[
        int | None, typer.Option(min=1, help="candidate actions per step (self-consistency)")
    ] = None,
    fallback: Annotated[
        str | None, typer.Option(help="a larger model spec to escalate hard steps to")
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="with --fallback: re-ask the larger model when the small one's mean "
            "token probability is below this",
        ),
    ] = None,
    thread: Annotated[
        str | None, typer.Option(help="run id: the same id resumes an unfinished run")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the RunResult as JSON")] = False,
    max_steps: Annotated[int | None, typer.Option(min=1, help="actions before stopping")] = None,
    first_thought_prefix: Annotated[
        str | None, typer.Option(help="text the first step's thought starts with")
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="ask before each tool call runs")
    ] = False,
    checkpoint_path: Annotated[
        Path | None, typer.Option("--checkpoint", help="SQLite file for run checkpoints")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Run an agent on TASK, printing each step live, then the answer."""
    flags = {
        "sample_k": sample_k,
        "max_steps": max_steps,
        "first_thought_prefix": first_thought_prefix,
        "checkpoint_path": checkpoint_path,
    }
    options = merge_config(ctx, config, flags, rename={"first_thought_prefix": "first_thought"})
    if min_confidence is not None and not fallback:
        raise SlmkitError(
            "--min-confidence needs a model to escalate to",
            hint="add --fallback MODEL_SPEC (e.g. --fallback llamacpp:smollm2)",
        )
    small = load_model(model)
    chat: ChatModel = small
    if fallback:
        routing = RouterConfig(min_confidence=min_confidence)
        chat = Router(small, load_model(fallback), routing)
    names = [n.strip() for n in tools.split(",") if n.strip()]
    registry = build_tools(names, model=small, index=index, code=code)
    gate = _ask_at_terminal if approve else None
    agent: ToolAgent | CodeAgent
    if code:
        agent = CodeAgent(
            chat, registry, with_options(CodeAgentConfig, None, options), approve=gate
        )
    else:
        agent = ToolAgent(chat, registry, with_options(AgentConfig, None, options), approve=gate)
    with agent:
        if json_out:
            typer.echo(agent.run(task, thread_id=thread).to_json())
            return
        stream = agent.stream(task, thread_id=thread)
        for event in stream:
            _print_event(event)
        _print_result(stream.result)


def _ask_at_terminal(call: ToolCall) -> bool | str:
    ok = typer.confirm(f"run {call.name}({call.arguments})?", default=True)
    return True if ok else "declined at the terminal"


def _print_event(e: StepEvent) -> None:
    if e.kind == "action":
        who = f"[dim]{escape(e.model or '')}[/]"
        esc = f" [yellow](escalated: {escape(e.escalation)})[/]" if e.escalation else ""
        body = escape(e.text or "") if e.valid else f"[red]invalid: {escape(e.text or '')}[/]"
        console.print(f"[bold]step {e.step}[/] {who}{esc} {body}", highlight=False)
    elif e.kind == "observation":
        color = "green" if e.ok else "red"
        text = escape((e.observation or "").strip())
        console.print(f"  [{color}]→[/] {text}  [dim]{e.tool_s:.2f}s[/]", highlight=False)


def _print_result(result: RunResult) -> None:
    m = result.metrics
    title = f"answer ({result.stopped})"
    console.print(Panel(escape(result.answer or "(no answer)"), title=title, expand=False))
    if result.answer_flag:
        console.print(f"[yellow]not trusted: {escape(result.answer_flag)}[/]", highlight=False)
    rate = "n/a" if m.schema_valid_rate is None else f"{m.schema_valid_rate:.0%}"
    calls = "n/a" if m.executable_call_rate is None else f"{m.executable_call_rate:.0%}"
    console.print(
        f"[dim]{m.steps} steps, {m.prompt_tokens}+{m.completion_tokens} tokens, "
        f"{m.wall_s:.1f}s, schema-valid {rate}, executable calls {calls}, "
        f"{m.escalations} escalations, cost {m.cost:.6f}, thread {result.thread_id}[/]",
        highlight=False,
    )
