"""``agentctl demo-call``: one grammar-constrained tool call from the embedded model, run."""

from __future__ import annotations

import json
from typing import Literal

from rich.console import Console
from rich.panel import Panel

from slmkit.models import load_model
from slmkit.tools import ToolRegistry, calculator, tool, tool_call_messages

__all__ = ["run_demo_call"]

_CITIES = {"paris": 18.0, "tokyo": 24.5, "lima": 21.0}


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current temperature in a city.

    Args:
        city: the city name, e.g. Paris
        unit: the temperature unit
    """
    c = _CITIES.get(city.strip().lower())
    if c is None:
        raise ValueError(f"no weather data for {city!r}; known cities: {', '.join(_CITIES)}")
    value = c if unit == "celsius" else c * 9 / 5 + 32
    return f"{value:.1f} degrees {unit} in {city}"


QUESTIONS = (
    "What is 37 multiplied by 42?",
    "What's the weather like in Tokyo right now, in fahrenheit?",
)


def run_demo_call(model_spec: str, console: Console) -> None:
    registry = ToolRegistry([calculator, get_weather])
    model = load_model(model_spec)
    schema = registry.call_schema()
    console.print(f"[bold]model[/] {model!r}   [bold]tools[/] {', '.join(registry.names)}")
    for question in QUESTIONS:
        messages = tool_call_messages([{"role": "user", "content": question}], registry)
        out = model.chat(messages, schema=schema, max_tokens=96)
        verdict = "[green]valid[/]" if out.valid else f"[red]invalid: {out.error}[/]"
        result = registry.execute(out.parsed) if out.valid else None
        body = (
            f"[bold]user[/]   {question}\n"
            f"[bold]model[/]  {out.text}\n"
            f"[bold]schema[/] {verdict}  ({out.usage.completion_tokens} tokens, "
            f"{out.latency_s:.2f}s)\n"
        )
        if result is not None:
            shown = result.content if result.ok else f"[red]{result.error}[/]"
            body += f"[bold]tool[/]   {shown}"
        console.print(Panel(body, title="constrained tool call", expand=False))
    console.print(
        "[dim]call schema: "
        + json.dumps(schema)[:200]
        + "...[/]\n[dim]The model can only emit a call of a registered tool with valid "
        "arguments: decoding is masked by the schema's grammar (llguidance).[/]"
    )
