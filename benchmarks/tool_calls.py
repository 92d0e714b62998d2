"""Tool-call benchmark: BFCL questions, the embedded model, unconstrained vs constrained.

Categories (from the PyPI package ``bfcl-eval``, fetched once into the slmkit cache):
``simple_python`` (one function, one call), ``multiple`` (pick one of 2-4 functions),
``parallel`` (several calls of one function) and ``irrelevance`` (no function fits: the
right answer is no call). Each question is answered twice by the same model with the
same prompt: once free (unconstrained) and once decoded under the JSON Schema of a call
(llguidance token masking). The decline option ("no call") is part of every schema and
prompt, for every category, because a real agent does not know in advance whether a
request fits its tools:

* one call:  a union over the question's functions of ``{"name": <const>, "arguments":
  <its schema>}``, plus ``{"name": "none", "arguments": {}}``;
* parallel:  a list of such calls (``[]`` is no call).

Measured per category and mode: JSON-valid rate (the reply holds a JSON value: the first
``{``/``[`` of the reply, fences allowed, parsed up to its end), schema-valid rate (that
value validates against the call schema), AST accuracy
(:func:`slmkit.simulators.envs.bfcl_check.check_calls`, BFCL's rules: for ``irrelevance``
any reply that is not a call is correct), p50/p95 latency per call and completion tokens
per second.

    python benchmarks/tool_calls.py                   # the table (about 12 min on 2 cores)
    python benchmarks/tool_calls.py --limit 10        # quick run
    python benchmarks/tool_calls.py --sweep --limit 100   # prompt/schema variants

``--sweep`` runs each prompt/schema variant on the first N ``simple_python`` questions,
constrained, and stores the results (``tool_calls_variants.json``) that the Markdown
report shows as "what we tried".
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from slmkit.models import DEFAULT_SPEC, ChatModel, load_model
from slmkit.simulators.envs.bfcl_check import check_calls
from slmkit.simulators.envs.bfcl_data import BfclItem, load_bfcl
from slmkit.tools import Tool, ToolRegistry
from slmkit.tools.prompting import describe_tool, tool_call_messages

CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One way of prompting and constraining: what the sweep compares."""

    name: str
    note: str
    template_text: str | None = None
    """System prompt (Jinja); None is the shipped ``tools/prompts/tool_call.md``."""
    describe: str = "signature"
    """How tools are listed: ``signature`` (the library's ``describe_tool``) or ``json``."""
    optional: str = "keep"
    """``keep`` optional arguments in the schema, or ``drop`` them (required only)."""
    max_string: int | None = None
    """``maxLength`` added to free string arguments."""
    allow_no_call: bool = True


def _describe_json(t: Tool) -> str:
    return json.dumps(
        {"name": t.name, "description": t.description, "parameters": t.parameters},
        ensure_ascii=False,
    )


def _describe_signature_only(t: Tool) -> str:
    return describe_tool(t).splitlines()[0]


_DESCRIBE: dict[str, Callable[[Tool], str]] = {
    "signature": describe_tool,
    "signature-nodesc": _describe_signature_only,
    "json": _describe_json,
}

PLAIN_PROMPT = """You are a helpful assistant with access to the following functions. \
Respond with a JSON object for the function call.

{{ functions }}"""

_NO_CALL_LINE = """{% if allow_no_call %}
If no function fits the request, reply {% if parallel %}[]{% else %}\
{"name": "{{ no_call }}", "arguments": {}}{% endif %}.
{% endif %}"""

_FORMAT = """{% if parallel %}a list of calls [{"name": "<function name>", "arguments": \
{"<argument>": <value>}}, ...], one call per task in the request{% else %}\
{"name": "<function name>", "arguments": {"<argument>": <value>}}{% endif %}"""

ORIGINAL_PROMPT = (
    "You are a function-calling assistant. Answer the user by calling the function that "
    "fits their request. Reply with JSON only, in the form " + _FORMAT + ". Copy argument "
    "values from the user's request; leave out optional arguments the user did not mention.\n"
    "\nFunctions:\n{{ functions }}"
)

DECLINE_PROMPT = ORIGINAL_PROMPT.replace("\nFunctions:", _NO_CALL_LINE + "\nFunctions:")

VERBATIM_PROMPT = (
    "You are a function-calling assistant. Answer the user by calling the function that "
    "fits their request. Reply with JSON only, in the form " + _FORMAT + ".\n"
    "Rules:\n"
    "- Take every argument value from the user's request, exactly as written: the same "
    "numbers with their signs, the same words.\n"
    "- Give every required argument. Give an optional argument only if the request "
    "mentions its value.\n\nFunctions:\n{{ functions }}"
)

_EXAMPLE = """Example:
Functions:
- geometry.distance(x1: number, y1: number, x2: number, y2: number, unit: string \
(optional)): Distance between two points.
Request: How far is the point (-3, 4) from the point (2, 0)?
Reply: {"name": "geometry.distance", "arguments": {"x1": -3, "y1": 4, "x2": 2, "y2": 0}}
"""

EXAMPLE_PROMPT = (
    VERBATIM_PROMPT.replace("\nFunctions:\n{{ functions }}", "")
    + "\n"
    + _EXAMPLE
    + "\nNow the real functions:\n{{ functions }}"
)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "plain",
            "reference set-up: plain JSON system prompt, functions as JSON, no decline option",
            template_text=PLAIN_PROMPT,
            describe="json",
            allow_no_call=False,
        ),
        Variant(
            "plain+decline",
            "plain, with the decline option in the schema",
            template_text=PLAIN_PROMPT,
            describe="json",
        ),
        Variant(
            "instructions+json",
            "instructions (format, copy values, omit unmentioned optionals), functions as JSON",
            template_text=ORIGINAL_PROMPT,
            describe="json",
        ),
        Variant(
            "instructions+signature",
            "same, functions as signature lines with argument descriptions",
            template_text=ORIGINAL_PROMPT,
        ),
        Variant(
            "required-only",
            "instructions+signature; schema keeps only required arguments",
            template_text=ORIGINAL_PROMPT,
            optional="drop",
        ),
        Variant(
            "maxlen-64",
            "instructions+signature; free strings capped at 64 characters",
            template_text=ORIGINAL_PROMPT,
            max_string=64,
        ),
        Variant(
            "signature-nodesc",
            "instructions, signature lines without argument descriptions",
            template_text=ORIGINAL_PROMPT,
            describe="signature-nodesc",
        ),
        Variant(
            "decline-in-prompt",
            'instructions+signature, and the prompt says how to decline ({"name": "none"})',
            template_text=DECLINE_PROMPT,
        ),
        Variant(
            "verbatim-rules",
            "rules: copy values verbatim with signs, optionals only if mentioned",
            template_text=VERBATIM_PROMPT,
        ),
        Variant(
            "one-shot",
            "verbatim rules + a one-shot example (negative number, omitted optional)",
            template_text=EXAMPLE_PROMPT,
        ),
        Variant("default", "the shipped prompt and schema"),
    )
}


# --------------------------------------------------------------------------- one item


@dataclass
class ItemResult:
    id: str
    category: str
    mode: str
    text: str
    json_valid: bool
    schema_valid: bool
    correct: bool
    reason: str
    latency_s: float
    completion_tokens: int


def transform_parameters(params: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """Apply a variant's schema design to one tool's argument schema."""
    out = copy.deepcopy(params)
    props: dict[str, Any] = out.get("properties", {})
    if variant.optional == "drop":
        required = set(out.get("required", []))
        out["properties"] = props = {k: v for k, v in props.items() if k in required}
    if variant.max_string is not None:
        for spec in props.values():
            if spec.get("type") == "string" and "enum" not in spec:
                spec.setdefault("maxLength", variant.max_string)
    return out


def build_tools(item: BfclItem, variant: Variant) -> ToolRegistry:
    tools = []
    for f in item.functions:
        t = Tool.from_json_schema(f["name"], f.get("description", ""), f["parameters"])
        tools.append(replace(t, parameters=transform_parameters(t.parameters, variant)))
    return ToolRegistry(tools)


def extract_json(text: str) -> tuple[bool, Any]:
    """The first JSON value in a free reply (a Markdown fence allowed), if there is one."""
    body = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)(?:```|$)", body, re.S)
    if fence:
        body = fence.group(1).strip()
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        return False, None
    try:
        value, _ = json.JSONDecoder().raw_decode(body[min(starts) :])
    except json.JSONDecodeError:
        return False, None
    return True, value


@dataclass
class Prepared:
    item: BfclItem
    schema: dict[str, Any]
    messages: list[dict[str, Any]]
    max_tokens: int
    prompt_s: float = 0.0


def prepare(model: ChatModel, item: BfclItem, variant: Variant) -> Prepared:
    """Build the schema and prompt, and time the prompt alone (a 1-token call).

    The calls that follow reuse llama.cpp's cached prompt, so each one is charged this
    prompt time: latencies are those of an uncached call, whichever mode runs first.
    """
    parallel = item.category == "parallel"
    registry = build_tools(item, variant)
    messages = tool_call_messages(
        item.messages,
        registry,
        parallel=parallel,
        allow_no_call=variant.allow_no_call,
        template_text=variant.template_text,
        describe=_DESCRIBE[variant.describe],
    )
    prep = Prepared(
        item=item,
        schema=registry.call_schema(parallel=parallel, allow_no_call=variant.allow_no_call),
        messages=messages,
        max_tokens=256 if parallel else 128,
    )
    prep.prompt_s = model.chat(messages, max_tokens=1).latency_s
    return prep


def run_item(model: ChatModel, prep: Prepared, constrained: bool) -> ItemResult:
    item, schema = prep.item, prep.schema
    out = model.chat(
        prep.messages,
        schema=schema if constrained else None,
        max_tokens=prep.max_tokens,
        temperature=0.0,
    )
    if constrained and out.valid:
        json_ok, value = True, out.parsed
    else:
        json_ok, value = extract_json(out.text)
    schema_ok = json_ok and jsonschema.Draft202012Validator(schema).is_valid(value)
    calls: list[dict[str, Any]] | None = None
    if json_ok:
        try:
            calls = [
                {"name": c.name, "arguments": c.arguments}
                for c in ToolRegistry.calls_from_output(value)
            ]
        except (TypeError, AttributeError):
            calls = None
    verdict = check_calls(calls, item)
    return ItemResult(
        id=item.id,
        category=item.category,
        mode="constrained" if constrained else "unconstrained",
        text=out.text,
        json_valid=json_ok,
        schema_valid=schema_ok,
        correct=verdict.correct,
        reason=verdict.reason,
        latency_s=prep.prompt_s + out.latency_s,
        completion_tokens=out.usage.completion_tokens,
    )


# --------------------------------------------------------------------------- aggregation


@dataclass
class Row:
    category: str
    mode: str
    n: int
    json_valid: float
    schema_valid: float
    accuracy: float
    p50_s: float
    p95_s: float
    tokens_per_s: float
    items: list[ItemResult] = field(default_factory=list, repr=False)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(category: str, mode: str, results: list[ItemResult]) -> Row:
    n = len(results)
    lat = [r.latency_s for r in results]
    return Row(
        category=category,
        mode=mode,
        n=n,
        json_valid=sum(r.json_valid for r in results) / n,
        schema_valid=sum(r.schema_valid for r in results) / n,
        accuracy=sum(r.correct for r in results) / n,
        p50_s=percentile(lat, 0.5),
        p95_s=percentile(lat, 0.95),
        tokens_per_s=sum(r.completion_tokens for r in results) / max(sum(lat), 1e-9),
        items=results,
    )


def run_rows(
    model: ChatModel,
    categories: Sequence[str],
    modes: Sequence[str],
    limit: int,
    variant: Variant,
    progress: Progress,
) -> list[Row]:
    rows: list[Row] = []
    for cat in categories:
        items = load_bfcl(cat, limit=limit)
        task = progress.add_task(cat, total=len(items) * len(modes))
        results: dict[str, list[ItemResult]] = {mode: [] for mode in modes}
        for it in items:
            prep = prepare(model, it, variant)
            for mode in modes:
                results[mode].append(run_item(model, prep, mode == "constrained"))
                progress.advance(task)
        rows.extend(summarise(cat, mode, results[mode]) for mode in modes)
    return rows


# --------------------------------------------------------------------------- output


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


HEADER = ("category", "mode", "N", "JSON-valid", "schema-valid", "AST acc.", "p50 s", "p95 s")


def cells(row: Row) -> list[str]:
    return [
        row.category,
        row.mode,
        str(row.n),
        pct(row.json_valid),
        pct(row.schema_valid),
        pct(row.accuracy),
        f"{row.p50_s:.2f}",
        f"{row.p95_s:.2f}",
        f"{row.tokens_per_s:.1f}",
    ]


def md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def variants_markdown(data: dict[str, Any]) -> str:
    rows = data["rows"]
    best = max(rows, key=lambda r: r["accuracy"])
    body = [
        [
            ("**" + r["name"] + "**") if r is best else r["name"],
            r["note"],
            pct(r["json_valid"]),
            pct(r["schema_valid"]),
            pct(r["accuracy"]),
            f"{r['p50_s']:.2f}",
        ]
        for r in rows
    ]
    return (
        f"### What we tried (first {data['n']} `simple_python`, constrained, {data['model']})\n\n"
        + md_table(("variant", "what", "JSON-valid", "schema-valid", "AST acc.", "p50 s"), body)
        + "\n"
    )


def markdown(rows: list[Row], info: dict[str, Any], variants: dict[str, Any] | None) -> str:
    head = (
        "## Tool calls on BFCL: unconstrained vs constrained\n\n"
        f"Model `{info['model']}`, N = {info['limit']} questions per category (the first N), "
        f"greedy decoding, {info['machine']}, {info['date']}, total {info['total_s']:.0f} s.\n\n"
    )
    table = md_table((*HEADER, "tok/s"), [cells(r) for r in rows])
    notes = (
        "\n\nJSON-valid: the reply holds a JSON value (first `{`/`[`, code fences allowed). "
        "Schema-valid: it validates against the call schema (the union of the question's "
        'functions plus `{"name": "none"}`; a list of calls for `parallel`). AST accuracy: '
        "BFCL's AST checker rules (`slmkit.simulators.envs.bfcl_check.check_calls`); "
        "for `irrelevance` a "
        "reply that is not a call counts as correct, as in BFCL. Latency is per call "
        "(prompt + decoding); tok/s is completion tokens per second.\n"
    )
    out = head + table + notes
    if variants:
        out += "\n" + variants_markdown(variants)
    return out


def render(rows: list[Row], console: Console) -> None:
    table = Table(title="BFCL tool calls")
    for h in (*HEADER, "tok/s"):
        table.add_column(h, justify="left" if h in ("category", "mode") else "right")
    for r in rows:
        table.add_row(*cells(r))
    console.print(table)


# --------------------------------------------------------------------------- main


def machine() -> str:
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs"


def run_sweep(model: ChatModel, args: argparse.Namespace, console: Console) -> None:
    names = args.variants or list(VARIANTS)
    path = RESULTS / "tool_calls_variants.json"
    data: dict[str, Any] = {"n": args.limit, "model": args.model, "rows": []}
    if path.is_file() and args.variants:
        old = json.loads(path.read_text())
        if old.get("n") == args.limit and old.get("model") == args.model:
            data = old
    items = load_bfcl("simple_python", limit=args.limit)
    # Item-major: variants that share a prompt reuse llama.cpp's prompt cache.
    results: dict[str, list[ItemResult]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("variants", total=len(items) * len(names))
        for it in items:
            for name in names:
                start = time.perf_counter()
                prep = prepare(model, it, VARIANTS[name])
                results[name].append(run_item(model, prep, constrained=True))
                seconds[name] += time.perf_counter() - start
                progress.advance(task)
    for name in names:
        row = summarise("simple_python", "constrained", results[name])
        entry = {
            "name": name,
            "note": VARIANTS[name].note,
            "json_valid": row.json_valid,
            "schema_valid": row.schema_valid,
            "accuracy": row.accuracy,
            "p50_s": row.p50_s,
            "seconds": seconds[name],
        }
        data["rows"] = [r for r in data["rows"] if r["name"] != name] + [entry]
        console.print(
            f"{name:24s} acc {pct(row.accuracy):>4s}  schema {pct(row.schema_valid):>4s}  "
            f"p50 {row.p50_s:.2f}s"
        )
        if args.dump:
            dump(args.dump.with_suffix(f".{name}.jsonl"), row.items)
    order = list(VARIANTS)
    data["rows"].sort(key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    section = variants_markdown(data)
    console.print(section)
    if args.out.is_file():  # refresh the report's section without rerunning the table
        report = args.out.read_text(encoding="utf-8")
        cut = report.find("### What we tried")
        kept = report if cut < 0 else report[:cut]
        args.out.write_text(kept.rstrip("\n") + "\n\n" + section, encoding="utf-8")


def dump(path: Path, items: list[ItemResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in items:
            f.write(json.dumps(asdict(r)) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_SPEC, help="model spec")
    parser.add_argument("--limit", type=int, default=30, help="first N questions per category")
    parser.add_argument("--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["unconstrained", "constrained"],
        choices=["unconstrained", "constrained"],
    )
    parser.add_argument("--variant", default="default", choices=list(VARIANTS))
    parser.add_argument("--sweep", action="store_true", help="compare prompt/schema variants")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="sweep only these")
    parser.add_argument("--out", type=Path, default=RESULTS / "tool_calls.md")
    parser.add_argument("--dump", type=Path, default=None, help="write per-item JSONL here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console()
    model = load_model(args.model)
    if args.sweep:
        run_sweep(model, args, console)
        return
    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        rows = run_rows(
            model, args.categories, args.modes, args.limit, VARIANTS[args.variant], progress
        )
    total = time.perf_counter() - start
    render(rows, console)
    info = {
        "model": args.model,
        "limit": args.limit,
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "total_s": total,
    }
    variants_path = RESULTS / "tool_calls_variants.json"
    variants = json.loads(variants_path.read_text()) if variants_path.is_file() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, info, variants), encoding="utf-8")
    if args.dump:
        for r in rows:
            dump(args.dump.with_suffix(f".{r.category}.{r.mode}.jsonl"), r.items)
    console.print(f"total {total:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
