"""Scale-out: batch generation over many GPUs/nodes with Ray Data and vLLM.

Three ways to run slmkit's collection, evaluation and amplification bigger than one
process, all through the same :class:`~slmkit.models.ChatModel` contract:

* ``openai:http://host:8000/v1#model`` against ``vllm serve`` (or any OpenAI-compatible
  server): collection and evaluation run ``workers`` episodes concurrently (8 by
  default for ``openai:`` specs), and the server batches them;
* ``vllm:<model>``: in-process vLLM on a local GPU;
* :class:`RayDataModel`: ``chat_batch`` as a Ray Data job through ``ray.data.llm``
  (vLLM engine replicas on every GPU of a Ray cluster). It suits *batch* work where
  each request is one generation, like amplification (``--batch 256``); agent loops,
  which need each answer before the next request, are better served by ``vllm serve``.

Ray is optional (``pip install 'slmkit[ray]'``, plus vLLM on the workers); without it
:class:`RayDataModel` raises :class:`~slmkit.models.BackendUnavailableError` with that
hint. The code follows Ray's documented API: ``vLLMEngineProcessorConfig`` and
``build_processor`` (``build_llm_processor`` on Ray < 2.50), rows with ``messages`` and
per-row ``sampling_params`` (``guided_decoding={"json": schema}`` for constrained
output), outputs in ``generated_text``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from slmkit.models import (
    BackendUnavailableError,
    ChatModel,
    Generation,
    RawOutput,
    Request,
    RowResult,
)

__all__ = ["RayDataModel", "ray_available"]

_HINT = (
    "pip install 'slmkit[ray]' (Ray Data with its LLM extra) and vllm on the GPU workers; "
    "or use an openai: spec against `vllm serve`"
)


def ray_available() -> bool:
    """Whether ``ray.data.llm`` can be imported here."""
    if importlib.util.find_spec("ray") is None:
        return False
    try:
        import ray.data.llm  # noqa: F401
    except ImportError:
        return False
    return True


class RayDataModel(ChatModel):
    """``chat_batch`` as a Ray Data job over vLLM engine replicas (see the module docs).

    Args:
        model_source: a hub id or a local model folder for vLLM.
        concurrency: vLLM engine replicas (one per GPU group).
        batch_size: rows per batch sent to an engine.
        engine_kwargs: vLLM engine arguments (``max_model_len``, ``tensor_parallel_size``).
        structured_key: the sampling-params key of constrained decoding:
            ``"guided_decoding"`` (vLLM < 0.11) or ``"structured_outputs"`` (newer vLLM).
        name: the model name in metrics (default: ``model_source``).
    """

    backend = "ray"
    supports_grammar = False

    def __init__(
        self,
        model_source: str,
        *,
        concurrency: int = 1,
        batch_size: int = 64,
        engine_kwargs: dict[str, Any] | None = None,
        structured_key: str = "guided_decoding",
        name: str | None = None,
    ) -> None:
        if not ray_available():
            raise BackendUnavailableError(
                "Ray Data's LLM API (ray.data.llm) is not installed", hint=_HINT
            )
        self.model_source = model_source
        self.name = name or model_source
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.engine_kwargs = dict(engine_kwargs or {})
        self.structured_key = structured_key

    def _processor(self) -> Any:
        import ray.data.llm as rdl

        config = rdl.vLLMEngineProcessorConfig(
            model_source=self.model_source,
            engine_kwargs=self.engine_kwargs,
            concurrency=self.concurrency,
            batch_size=self.batch_size,
        )
        build = getattr(rdl, "build_processor", None) or rdl.build_llm_processor

        def preprocess(row: dict[str, Any]) -> dict[str, Any]:
            return {"messages": row["messages"], "sampling_params": row["sampling_params"]}

        def postprocess(row: dict[str, Any]) -> dict[str, Any]:
            return {
                "index": row["index"],
                "text": row.get("generated_text", ""),
                "completion_tokens": int(row.get("num_generated_tokens") or 0),
                "prompt_tokens": int(row.get("num_input_tokens") or 0),
            }

        return build(config, preprocess=preprocess, postprocess=postprocess)

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        import ray

        rows = []
        for i, req in enumerate(requests):
            sampling, constraint = req.sampling, req.constraint
            for j in range(sampling.n):
                params: dict[str, Any] = {
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "max_tokens": sampling.max_tokens,
                }
                if sampling.seed is not None:
                    params["seed"] = sampling.seed + j
                if sampling.stop:
                    params["stop"] = list(sampling.stop)
                if constraint is not None and constraint.json_schema is not None:
                    params[self.structured_key] = {"json": constraint.json_schema}
                rows.append(
                    {"index": f"{i}:{j}", "messages": req.messages, "sampling_params": params}
                )
        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True)  # RAY_ADDRESS selects a cluster, else local
        done = self._processor()(ray.data.from_items(rows)).take_all()
        by_index = {str(r["index"]): r for r in done}
        out: list[RowResult] = []
        for i, req in enumerate(requests):
            samples = [by_index[f"{i}:{j}"] for j in range(req.sampling.n)]
            raws = [
                RawOutput(
                    text=str(s["text"]),
                    completion_tokens=int(s["completion_tokens"]),
                    finish_reason="stop",
                )
                for s in samples
            ]
            out.append(Generation(raws, int(samples[0]["prompt_tokens"])))
        return out
