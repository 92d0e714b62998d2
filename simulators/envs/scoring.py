"""Answer scoring shared by the environments: numeric match, normalized EM and token F1.

Numbers are read the way graders of GSM8K-style data read them: the last number in the
answer (``\\boxed{}`` first when present), with thousands separators, currency signs and
a trailing ``%`` ignored, and simple fractions evaluated. Text answers are compared
after SQuAD's normalization (lower case, punctuation and articles removed, whitespace
collapsed), so "The Eiffel Tower." matches "eiffel tower".
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from fractions import Fraction

__all__ = [
    "exact_match",
    "extract_number",
    "f1_score",
    "normalize_answer",
    "numbers_match",
    "parse_number",
]

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|-?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def parse_number(text: str) -> float | None:
    """``text`` as a number if it is one (``"1,234"``, ``"$5"``, ``"3/4"``, ``"12%"``)."""
    cleaned = text.strip().replace(",", "").replace("$", "").replace("€", "").rstrip("%").strip()
    if not cleaned:
        return None
    try:
        if "/" in cleaned:
            return float(Fraction(cleaned))
        return float(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(answer: str | None) -> float | None:
    """The number an answer gives: inside ``\\boxed{}`` if present, else the last one."""
    if not answer:
        return None
    boxed = _BOXED.findall(answer)
    for candidate in reversed(boxed):
        value = parse_number(candidate)
        if value is not None:
            return value
    text = answer.split("####")[-1] if "####" in answer else answer
    for match in reversed(_NUMBER.findall(text)):
        value = parse_number(match)
        if value is not None:
            return value
    return None


def numbers_match(got: float | None, expected: float | None, *, rel_tol: float = 1e-6) -> bool:
    """Equal within ``rel_tol`` (and an absolute 1e-9 for answers near zero)."""
    if got is None or expected is None:
        return False
    return math.isclose(got, expected, rel_tol=rel_tol, abs_tol=1e-9)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower case, no punctuation or articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str | None, gold: str) -> bool:
    """Normalized exact match."""
    return prediction is not None and normalize_answer(prediction) == normalize_answer(gold)


def f1_score(prediction: str | None, gold: str) -> float:
    """Token-level F1 between normalized prediction and gold (SQuAD)."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)
