"""``agentctl``: the command line of slmkit.

Each command is a thin layer over the Python API: it parses flags into the same config
objects the API takes, calls the library, and renders the result with rich.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slmkit.models import DEFAULT_SPEC, EMBEDDED_MODELS, SlmkitError

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentctl",
    help="slmkit: small language models as reliable agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
tools_app = typer.Typer(help="Run and inspect tools.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")

console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model spec, e.g. llamacpp:smollm2")]


@app.command()
def models() -> None:
    """Show the backends and embedded models available here."""
    import importlib.util

    from slmkit.models import embedded_gguf

    table = Table(title="backends")
    table.add_column("backend")
    table.add_column("available")
    table.add_column("spec example")
    checks = {
        "llamacpp": ("llama_cpp", DEFAULT_SPEC),
        "transformers": ("transformers", "transformers:smollm2"),
        "openai": ("httpx", "openai:http://127.0.0.1:8000/v1#MODEL"),
        "vllm": ("vllm", "vllm:Qwen/Qwen2.5-1.5B-Instruct"),
    }
    for backend, (module, example) in checks.items():
        ok = importlib.util.find_spec(module) is not None
        if backend == "vllm" and ok:
            import torch

            ok = bool(torch.cuda.is_available())
        table.add_row(backend, "[green]yes[/]" if ok else "[red]no[/]", example)
    console.print(table)
    emb = Table(title="embedded models")
    emb.add_column("alias")
    emb.add_column("file")
    for alias in EMBEDDED_MODELS:
        try:
            where = str(embedded_gguf(alias))
        except SlmkitError as exc:
            where = f"[red]{exc.message}[/]"
        emb.add_row(alias, where)
    console.print(emb)


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="the user message")],
    model: ModelOpt = DEFAULT_SPEC,
    schema: Annotated[
        Path | None, typer.Option(help="JSON Schema file: the answer must be valid JSON of it")
    ] = None,
    system: Annotated[str | None, typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: int | None = None,
) -> None:
    """Send one message to a model (optionally constrained by a JSON Schema)."""
    from slmkit.models import load_model

    schema_obj: dict[str, Any] | None = None
    if schema is not None:
        try:
            schema_obj = json.loads(schema.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SlmkitError(
                f"cannot read schema {schema}: {exc}", hint="pass a JSON Schema file"
            ) from exc
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    m = load_model(model)
    out = m.chat(
        messages, schema=schema_obj, max_tokens=max_tokens, temperature=temperature, seed=seed
    )
    console.print(out.text)
    status = "valid" if out.valid else f"INVALID ({out.error})"
    err_console.print(
        f"[dim]{m.name}: {out.usage.prompt_tokens}+{out.usage.completion_tokens} tokens, "
        f"{out.latency_s:.2f}s{', schema ' + status if schema_obj else ''}[/]"
    )


@tools_app.command("run")
def tools_run(
    name: Annotated[str, typer.Argument(help="calculator | python")],
    source: Annotated[str, typer.Argument(help="expression or code")],
    timeout_s: Annotated[float, typer.Option(min=0.1)] = 10.0,
) -> None:
    """Run a built-in tool directly, e.g. `agentctl tools run python "print(2**10)"`."""
    from slmkit.tools import PythonSandbox, ToolError, evaluate_arithmetic

    if name == "calculator":
        try:
            console.print(evaluate_arithmetic(source))
        except (ValueError, ArithmeticError) as exc:
            raise ToolError(
                f"calculator: {exc}",
                hint="use numbers, + - * / // % ** and functions like sqrt(2), e.g. '37 * 42'",
            ) from exc
        return
    if name != "python":
        raise SlmkitError(f"unknown tool {name!r}", hint="built-in tools: calculator, python")
    with PythonSandbox(timeout_s=timeout_s) as sb:
        r = sb.run(source)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.timed_out:
        err_console.print(f"[red]timed out after {timeout_s}s[/]")
    elif r.error:
        err_console.print(r.error, style="red", markup=False, highlight=False)
    err_console.print(f"[dim]isolation: {r.isolation.summary()}[/]")
    if r.error or r.timed_out:
        raise typer.Exit(1)


@app.command("demo-call")
def demo_call(model: ModelOpt = DEFAULT_SPEC) -> None:
    """Show a grammar-constrained tool call from the embedded model, then run it."""
    from slmkit.apps.demo_call import run_demo_call

    run_demo_call(model, console)


def _register_commands() -> None:
    """Commands of the upper layers live beside their own code, each with a register()."""
    from slmkit.apps import cli_data, cli_rag, cli_run, cli_sim, cli_train

    for module in (cli_data, cli_rag, cli_run, cli_sim, cli_train):
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: turn slmkit errors into a message and a hint, not a traceback."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        app()
    except SlmkitError as exc:
        err_console.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)
        sys.exit(2)
