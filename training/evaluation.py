"""Before/after evaluation of a trained model, shared by ``distill`` and ``rl``.

Both models run the same agent on the same held-out tasks through
:func:`slmkit.simulators.evaluate`, so the numbers are the ones ``agentctl eval``
reports. ``backend="transformers"`` runs the HF folders as trained (fp32 on CPU);
``"llamacpp"`` exports *both* to F16 GGUF the same way first, so neither side gets a
different precision than the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from slmkit.models import ChatModel, batching_options, load_model
from slmkit.training.student import load_student

__all__ = ["eval_before_after"]


def _models(
    folder: Path,
    base: Path,
    trained: Path,
    backend: Literal["transformers", "llamacpp"],
    workers: int,
) -> dict[str, tuple[str, Callable[[], ChatModel]]]:
    """Each side's spec and loader, sized for ``workers`` concurrent episodes."""

    def _sized(backend: str) -> dict[str, Any]:
        return batching_options(f"{backend}:model", workers)

    if backend == "llamacpp":
        from slmkit.training.export import export_gguf

        base_gguf = export_gguf(base, folder / "base-f16.gguf")
        trained_gguf = export_gguf(trained)
        return {
            "before": (
                f"llamacpp:{base_gguf}",
                lambda: load_model(f"llamacpp:{base_gguf}", cache=False, **_sized("llamacpp")),
            ),
            "after": (
                f"llamacpp:{trained_gguf}",
                lambda: load_student(f"llamacpp:{trained_gguf}", trained, **_sized("llamacpp")),
            ),
        }
    return {
        "before": (f"transformers:{base}", lambda: load_model(f"transformers:{base}", cache=False)),
        "after": (
            f"transformers:{trained}",
            lambda: load_student(f"transformers:{trained}", trained),
        ),
    }


def eval_before_after(
    folder: Path,
    *,
    env: str,
    split: str,
    n: int | None,
    base: Path,
    trained: Path,
    env_options: dict[str, Any] | None = None,
    agent_options: dict[str, Any] | None = None,
    backend: Literal["transformers", "llamacpp"] = "transformers",
    workers: int | None = None,
    progress: bool = True,
    say: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``base`` and ``trained`` on ``env``; return both reports as dicts.

    Results go to ``folder/before.jsonl`` and ``folder/after.jsonl`` (resumable, like any
    evaluation), with their summaries beside them.
    """
    from slmkit.simulators import EvalConfig, evaluate

    out: dict[str, Any] = {}
    for label, (spec, make) in _models(folder, base, trained, backend, workers or 1).items():
        if say is not None:
            say("eval", f"{label}: {spec} on {env} ({split})")
        model = make()
        try:
            report = evaluate(
                EvalConfig(
                    env=env,
                    env_options=env_options or {},
                    split=split,
                    limit=n,
                    model=spec,
                    agent_options=agent_options or {},
                    out=folder / f"{label}.jsonl",
                    workers=workers,
                    chart=False,
                    progress=progress,
                ),
                model=model,
            )
        finally:
            model.close()
        out[label] = report.model_dump(mode="json")
    return out
