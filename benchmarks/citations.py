"""Citation benchmark: are cited sentences supported, answers right, refusals right?

Corpus: the Python language reference topics that ship with CPython (the demo's default
index). Questions are hand-written in two files that were fixed before any run:
``benchmarks/data/citations_tune.jsonl`` (the thresholds in ``slmkit.retrieval.support``
were chosen on it) and ``citations_test.jsonl`` (reported, never tuned on). Each line is
``{"question", "topic", "gold"}``: an answerable question names its topic and gold
phrases, an unanswerable one (nothing in the reference says) has ``topic: null``.

Per answer mode (``grounded``: sentences copied from passages under a grammar;
``free``: the model's own sentences, each citing a verbatim quote), measured:

* **correct**: answerable questions whose shown answer contains a gold phrase
  (normalized text); for ``free``, also of the draft before unsupported answers were
  withheld, which is what the demo showed before support was scored;
* **false refusals** (answerable, refused) and **refusals** of unanswerable questions;
* **supported sentences**: share of the sentences the model wrote whose quote supports
  them, by the support scorer, and **verbatim quotes**;
* latency p50 per answer (model + checks).

The support scorer itself is checked against hand labels: ``citations_pairs.jsonl``
holds (sentence, quote, label) pairs taken from the model's free-form answers, labelled
by reading them; agreement is reported on the split asked for. ``--calibrate`` sweeps
the thresholds on the tuning split and prints the best; nothing is changed by it.

    python benchmarks/citations.py                    # test split, both modes
    python benchmarks/citations.py --split tune --calibrate
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from slmkit.retrieval import Index, SupportScorer, answer, normalize_text
from slmkit.retrieval.support import default_scorer

DATA = Path(__file__).parent / "data"


def load_questions(split: str) -> list[dict[str, Any]]:
    lines = (DATA / f"citations_{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_pairs(split: str) -> list[dict[str, Any]]:
    path = DATA / "citations_pairs.jsonl"
    if not path.exists():
        return []
    pairs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [p for p in pairs if p["split"] == split]


def is_correct(text: str, gold: Sequence[str]) -> bool:
    said = normalize_text(text)
    return any(normalize_text(g) in said for g in gold)


@dataclass
class ModeResult:
    mode: str
    correct: int = 0
    draft_correct: int = 0
    false_refusals: int = 0
    answerable: int = 0
    refused_unanswerable: int = 0
    unanswerable: int = 0
    sentences: int = 0
    supported: int = 0
    quotes: int = 0
    verbatim: int = 0
    latencies: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def _draft(ans: dict[str, Any]) -> tuple[str, list[bool], list[dict[str, Any]]]:
    """What the model wrote, before an unsupported answer was withheld."""
    held = ans["meta"].get("withheld")
    if held:
        return held["text"], held["sentence_supported"], held["citations"]
    return ans["text"], ans["sentence_supported"], ans["citations"]


def tally(result: ModeResult, q: dict[str, Any], ans: dict[str, Any], seconds: float) -> None:
    """Add one answer (``CitedAnswer.to_dict()``) to ``result``."""
    result.latencies.append(seconds)
    text, supported, citations = _draft(ans)
    result.sentences += len(supported)
    result.supported += sum(supported)
    result.quotes += len(citations)
    result.verbatim += sum(bool(c["verified"]) for c in citations)
    if q["topic"] is None:
        result.unanswerable += 1
        result.refused_unanswerable += ans["refused"]
    else:
        result.answerable += 1
        result.false_refusals += ans["refused"]
        result.correct += (not ans["refused"]) and is_correct(ans["text"], q["gold"])
        result.draft_correct += is_correct(text, q["gold"])
    result.records.append(
        {
            "question": q["question"],
            "mode": result.mode,
            "answer": ans,
            "draft": text,
            "seconds": seconds,
        }
    )


def run_mode(
    mode: str, questions: list[dict[str, Any]], index: Index, model: Any, scorer: SupportScorer
) -> ModeResult:
    result = ModeResult(mode)
    for q in questions:
        started = time.perf_counter()
        ans = answer(q["question"], index, model, mode=mode, scorer=scorer)  # type: ignore[arg-type]
        tally(result, q, ans.to_dict(), time.perf_counter() - started)
        Console(stderr=True).print(f"[dim]{mode}: {q['question']} -> {ans.text[:100]!r}[/]")
    return result


def from_records(path: Path, questions: list[dict[str, Any]]) -> list[ModeResult]:
    """Results re-tallied from a ``--records`` file of an earlier run (no model calls)."""
    by_question = {q["question"]: q for q in questions}
    results: dict[str, ModeResult] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        result = results.setdefault(rec["mode"], ModeResult(rec["mode"]))
        tally(result, by_question[rec["question"]], rec["answer"], rec["seconds"])
    return list(results.values())


def pct(num: int, den: int) -> str:
    return "-" if den == 0 else f"{num}/{den} ({num / den:.0%})"


def mode_rows(results: list[ModeResult]) -> list[list[str]]:
    rows = []
    for r in results:
        correct = pct(r.correct, r.answerable)
        if r.mode == "free":
            correct += f"; draft {pct(r.draft_correct, r.answerable)}"
        rows.append(
            [
                r.mode,
                correct,
                pct(r.false_refusals, r.answerable),
                pct(r.refused_unanswerable, r.unanswerable),
                pct(r.supported, r.sentences),
                pct(r.verbatim, r.quotes),
                f"{statistics.median(r.latencies):.1f}" if r.latencies else "-",
            ]
        )
    return rows


MODE_HEADERS = [
    "mode",
    "answerable: correct",
    "answerable: refused",
    "unanswerable: refused",
    "sentences supported",
    "quotes verbatim",
    "p50 s",
]


def relevance_check(
    questions: list[dict[str, Any]], index: Index, scorer: SupportScorer, k: int
) -> list[tuple[float, bool]]:
    """``(relevance, answerable)`` per question: the refusal gate, without a model."""
    out = []
    for q in questions:
        passages = index.search(q["question"], k)
        texts = [f"{p.title}\n{p.text}" for p in passages]
        out.append((scorer.relevance(q["question"], texts), q["topic"] is not None))
    return out


def evidence(pair: dict[str, Any]) -> tuple[str, str]:
    """``(sentence, evidence)`` as ``score_support`` builds it: the quote under its title."""
    title = pair.get("title") or ""
    return pair["sentence"], f"{title}: {pair['quote']}" if title else pair["quote"]


def agreement(
    pairs: list[dict[str, Any]], scorer: SupportScorer
) -> tuple[int, int, int, int] | None:
    """``(tp, fp, fn, tn)`` of the scorer against hand labels."""
    if not pairs:
        return None
    verdicts = scorer.score_pairs([evidence(p) for p in pairs])
    tp = sum(v.supported and p["label"] for v, p in zip(verdicts, pairs, strict=True))
    fp = sum(v.supported and not p["label"] for v, p in zip(verdicts, pairs, strict=True))
    fn = sum(not v.supported and p["label"] for v, p in zip(verdicts, pairs, strict=True))
    return tp, fp, fn, len(pairs) - tp - fp - fn


def calibrate(
    gate: list[tuple[float, bool]], pairs: list[dict[str, Any]], scorer: SupportScorer
) -> list[str]:
    """Best thresholds on this split by balanced accuracy (ties: the middle one)."""
    lines = []

    def balanced(predicted: list[bool], truth: list[bool]) -> float:
        pos = [p for p, t in zip(predicted, truth, strict=True) if t]
        neg = [not p for p, t in zip(predicted, truth, strict=True) if not t]
        parts = [sum(x) / len(x) for x in (pos, neg) if x]
        return sum(parts) / len(parts) if parts else 0.0

    grid = [i / 100 for i in range(5, 96)]
    scores = [balanced([r >= t for r, _ in gate], [a for _, a in gate]) for t in grid]
    best = [t for t, s in zip(grid, scores, strict=True) if s == max(scores)]
    lines.append(f"relevance threshold: {best[len(best) // 2]:.2f} (balanced acc {max(scores):.3f}")
    lines[-1] += f", best range {best[0]:.2f}-{best[-1]:.2f})"
    if pairs:
        truth = [bool(p["label"]) for p in pairs]
        results = []
        for weight in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            probe = SupportScorer(scorer.embedder, lexical_weight=weight)
            parts = probe.score_pairs([evidence(p) for p in pairs])
            for t in grid:
                acc = balanced([s.score >= t for s in parts], truth)
                results.append((acc, weight, t))
        top = max(a for a, _, _ in results)
        ties = [(w, t) for a, w, t in results if a == top]
        w, t = ties[len(ties) // 2]
        lines.append(f"support: weight {w:g}, threshold {t:.2f} (balanced acc {top:.3f})")
    return lines


def markdown(
    split: str,
    results: list[ModeResult],
    gate: list[tuple[float, bool]],
    agree: tuple[int, int, int, int] | None,
    scorer: SupportScorer,
    model: str,
    questions: list[dict[str, Any]],
) -> str:
    n_ans = sum(a for _, a in gate)
    gate_ok = sum((r >= scorer.relevance_threshold) == a for r, a in gate)
    lines = [
        "# Citation benchmark",
        "",
        f"Split `{split}` ({n_ans} answerable, {len(gate) - n_ans} unanswerable questions) "
        f"over the Python reference topics; model `{model}`, greedy, k=4; scorer "
        f"`{scorer.name}`, relevance threshold {scorer.relevance_threshold:g}; "
        f"{os.cpu_count()} CPUs (shared: latencies are inflated), "
        f"{sum(sum(r.latencies) for r in results) / 60:.1f} min of answering, "
        f"{datetime.now(UTC):%Y-%m-%d}.",
        "",
        "| " + " | ".join(MODE_HEADERS) + " |",
        "|" + "|".join("---" for _ in MODE_HEADERS) + "|",
        *("| " + " | ".join(row) + " |" for row in mode_rows(results)),
        "",
        f"Relevance check alone (no model): {pct(gate_ok, len(gate))} questions routed right "
        "(answerable ones passed, unanswerable ones refused).",
    ]
    if agree is not None:
        tp, fp, fn, tn = agree
        lines.append(
            f"Support scorer vs hand labels on this split: {tp + tn}/{tp + fp + fn + tn} agree "
            f"(supported: {tp} right, {fn} missed; unsupported: {tn} right, {fp} passed)."
        )
    lines += ["", *details(results, gate, questions)]
    return "\n".join([*lines, ""])


def _outcome(rec: dict[str, Any], q: dict[str, Any]) -> str:
    ans = rec["answer"]
    if ans["refused"]:
        return "withheld" if ans["meta"].get("withheld") else "refused"
    if q["topic"] is None:
        return "answered"
    return "correct" if is_correct(ans["text"], q["gold"]) else "wrong"


def details(
    results: list[ModeResult], gate: list[tuple[float, bool]], questions: list[dict[str, Any]]
) -> list[str]:
    """One row per question: its relevance and what each mode did with it."""
    modes = [r.mode for r in results]
    lines = [
        "| question | answerable | relevance | " + " | ".join(modes) + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    for i, (q, (relevance, answerable)) in enumerate(zip(questions, gate, strict=True)):
        cells = [_outcome(r.records[i], q) if i < len(r.records) else "-" for r in results]
        lines.append(
            f"| {q['question']} | {'yes' if answerable else 'no'} | {relevance:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--split", choices=["tune", "test"], default="test")
    parser.add_argument("--modes", default="grounded,free")
    parser.add_argument("--model", default="llamacpp:smollm2")
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--calibrate", action="store_true", help="print the best thresholds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--records", type=Path, default=None, help="write every answer (JSONL)")
    parser.add_argument(
        "--from-records", type=Path, default=None, help="re-tally a --records file, no model"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from slmkit.apps.demo import default_index
    from slmkit.models import load_model

    questions = load_questions(args.split)[: args.limit]
    index = default_index(status=lambda m: Console(stderr=True).print(f"[dim]{m}[/]"))
    scorer = default_scorer()
    gate = relevance_check(questions, index, scorer, k=4)
    pairs = load_pairs(args.split)
    if args.calibrate:
        for line in calibrate(gate, pairs, scorer):
            Console().print(line)
    if args.from_records:
        results = from_records(args.from_records, questions)
        model_name = results[0].records[0]["answer"]["model"] if results else args.model
    else:
        model = load_model(args.model)
        model_name = model.name
        modes = [m for m in args.modes.split(",") if m]
        results = [run_mode(m, questions, index, model, scorer) for m in modes]
    table = Table(title=f"Citation benchmark ({args.split})")
    for header in MODE_HEADERS:
        table.add_column(header)
    for row in mode_rows(results):
        table.add_row(*row)
    Console(width=160).print(table)
    text = markdown(
        args.split,
        results,
        gate,
        agreement(pairs, scorer),
        scorer,
        model_name,
        questions,
    )
    Console().print(text)
    if args.records:
        with args.records.open("w", encoding="utf-8") as f:
            for r in results:
                f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in r.records)
    out = args.out or Path(
        f"benchmarks/results/citations{'' if args.split == 'test' else '_tune'}.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
