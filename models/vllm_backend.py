"""In-process vLLM (GPU only): batch generation with native structured outputs.

vLLM pins its own torch/transformers, so it is an optional extra (``slmkit[gpu]``) or a
separate ``vllm serve`` process used through the ``openai:`` backend. This module only
imports vLLM when a ``vllm:`` spec is loaded.

``vllm.LLM`` serves one caller at a time, so concurrent calls (episodes in threads) are
coalesced by a :class:`~slmkit.models.batching.Batcher` into one ``LLM.chat`` with one
``SamplingParams`` per row: each row keeps its own constraint, sampling and seed, and
vLLM's scheduler batches them on the GPU.
"""

from __future__ import annotations

from typing import Any

from slmkit.models.base import (
    ChatModel,
    Generation,
    RawOutput,
    Request,
    RowResult,
    Sampling,
    TokenTrace,
)
from slmkit.models.batching import Batcher
from slmkit.models.errors import BackendUnavailableError
from slmkit.models.paths import model_location
from slmkit.models.schema import Constraint

__all__ = ["VllmModel"]


class VllmModel(ChatModel):
    """A model loaded by ``vllm.LLM``; concurrent calls share one batched vLLM call.

    Args:
        model: a hub id or model folder (the name in results).
        llm: an engine already running (a trainer's colocated ``vllm.LLM``) to use
            instead of starting one.
        max_batch: most rows in one ``LLM.chat``.
        batch_window_s: how long a batch waits for more concurrent calls to join.
        engine_args: ``vllm.LLM`` arguments (``gpu_memory_utilization``, ...).
    """

    backend = "vllm"
    supports_grammar = True
    supports_logprobs = True
    trace = False
    """Attach a :class:`~slmkit.models.TokenTrace` to every output (RL rollouts)."""

    def __init__(
        self,
        model: str,
        *,
        llm: Any = None,
        max_batch: int = 256,
        batch_window_s: float = 0.005,
        **engine_args: Any,
    ) -> None:
        self.name = model
        if llm is None:
            location = model_location(model)  # a missing folder is the first thing to say
            try:
                import vllm
            except ImportError as exc:
                raise BackendUnavailableError(
                    "vLLM is not installed (it needs a CUDA GPU)",
                    hint="pip install 'slmkit[gpu]' on a GPU machine, or run `vllm serve "
                    "MODEL` elsewhere and use openai:http://HOST:8000/v1#MODEL",
                ) from exc
            engine_args.setdefault("enable_prefix_caching", True)
            llm = vllm.LLM(model=str(location), **engine_args)
        self._llm = llm
        self._batcher = Batcher(
            self._chat, max_batch=max_batch, window_s=batch_window_s, name=model
        )

    def _params(self, constraint: Constraint | None, sampling: Sampling) -> Any:
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {
            "n": sampling.n,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "stop": list(sampling.stop) or None,
            "logprobs": 0 if sampling.logprobs or self.trace else None,
        }
        if constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = (
                StructuredOutputsParams(json=constraint.json_schema)
                if constraint.kind == "json"
                else StructuredOutputsParams(grammar=constraint.lark)
            )
        return SamplingParams(**kwargs)

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        return self._batcher.run(requests)

    def _chat(self, requests: list[Request]) -> list[RowResult]:
        """One ``LLM.chat`` over ``requests`` (on the batcher's thread)."""
        from slmkit.models.chat_format import to_text_messages

        params = [self._params(r.constraint, r.sampling) for r in requests]
        texts = [to_text_messages(r.messages) for r in requests]
        responses = self._llm.chat(texts, params, use_tqdm=False)
        results: list[RowResult] = []
        for resp in responses:
            outputs = []
            for o in resp.outputs:
                lps = None
                if o.logprobs:
                    lps = tuple(
                        float(step[tok].logprob)
                        for step, tok in zip(o.logprobs, o.token_ids, strict=False)
                    )
                trace = None
                if self.trace:
                    trace = TokenTrace(
                        tuple(resp.prompt_token_ids or ()), tuple(o.token_ids), logprobs=lps
                    )
                outputs.append(
                    RawOutput(
                        text=o.text,
                        completion_tokens=len(o.token_ids),
                        finish_reason=o.finish_reason or "stop",
                        token_logprobs=lps,
                        trace=trace,
                    )
                )
            results.append(Generation(outputs, len(resp.prompt_token_ids or [])))
        return results

    def close(self) -> None:
        self._batcher.close()
