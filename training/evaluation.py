"""Before/after evaluation of a trained model, shared by ``distill`` and ``rl``.

Both models run the same agent on the same held-out tasks through
:func:`slmkit.simulators.evaluate`, so the numbers are the ones ``agentctl eval``
reports. ``backend="transformers"`` runs the HF folders as trained (fp32 on CPU);
``"llamacpp"`` exports *both* to F16 GGUF the same way first, so neither side gets a
different precision than the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from slmkit.models import ChatModel, batching_options, load_model
from slmkit.training.student import load_student

__all__ = ["eval_before_after"]


def _models(
    folder: Path,
    base: Path | None,
    trained: Mapping[str, Path],
    backend: Literal["transformers", "llamacpp"],
    workers: int,
) -> dict[str, tuple[str, Callable[[], ChatModel]]]:
    """Each model's spec and loader (``before`` unless ``base`` is None, then ``trained``
    by label), sized for ``workers`` concurrent episodes."""
    sized = batching_options("llamacpp:model", workers)
    out: dict[str, tuple[str, Callable[[], ChatModel]]] = {}
    if backend == "llamacpp":
        from slmkit.training.export import export_gguf

        if base is not None:
            base_gguf = export_gguf(base, folder / "base-f16.gguf")
            out["before"] = (
                f"llamacpp:{base_gguf}",
                lambda: load_model(f"llamacpp:{base_gguf}", cache=False, **sized),
            )
        for label, path in trained.items():
            gguf = export_gguf(path)
            out[label] = (
                f"llamacpp:{gguf}",
                lambda g=gguf, p=path: load_student(f"llamacpp:{g}", p, **sized),  # type: ignore[misc]
            )
        return out
    if base is not None:
        out["before"] = (
            f"transformers:{base}",
            lambda: load_model(f"transformers:{base}", cache=False),
        )
    for label, path in trained.items():
        out[label] = (
            f"transformers:{path}",
            lambda p=path: load_student(f"transformers:{p}", p),  # type: ignore[misc]
        )
    return out


def eval_before_after(
    folder: Path,
    *,
    env: str,
    split: str,
    n: int | None,
    base: Path | None,
    trained: Path,
    more: Mapping[str, Path] | None = None,
    env_options: dict[str, Any] | None = None,
    agent_options: dict[str, Any] | None = None,
    backend: Literal["transformers", "llamacpp"] = "transformers",
    workers: int | None = None,
    progress: bool = True,
    say: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``base``, ``trained`` (and ``more``, by label) on ``env``; return the reports.

    ``base=None`` evaluates the trained models only (a learning-curve point).

    Results go to ``folder/before.jsonl``, ``folder/after.jsonl`` and ``folder/<label>.jsonl``
    (resumable, like any evaluation), with their summaries beside them.
    """
    from slmkit.simulators import EvalConfig, evaluate

    out: dict[str, Any] = {}
    folder.mkdir(parents=True, exist_ok=True)
    models = _models(folder, base, {"after": trained, **(more or {})}, backend, workers or 1)
    for label, (spec, make) in models.items():
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
