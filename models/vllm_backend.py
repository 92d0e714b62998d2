"""In-process vLLM (GPU only): batch generation with native structured outputs.

vLLM pins its own torch/transformers, so it is an optional extra (``slmkit[gpu]``) or a
separate ``vllm serve`` process used through the ``openai:`` backend. This module only
imports vLLM when a ``vllm:`` spec is loaded.
"""

from __future__ import annotations

from typing import Any

from slmkit.models.base import ChatModel, Message, RawOutput, Sampling
from slmkit.models.errors import BackendUnavailableError
from slmkit.models.paths import model_location
from slmkit.models.schema import Constraint

__all__ = ["VllmModel"]


class VllmModel(ChatModel):
    """A model loaded by ``vllm.LLM``; ``chat_batch`` is one batched vLLM call."""

    backend = "vllm"
    supports_grammar = True
    supports_logprobs = True

    def __init__(self, model: str, **engine_args: Any) -> None:
        location = str(model_location(model))  # a local path must exist; else a hub id
        try:
            import vllm
        except ImportError as exc:
            raise BackendUnavailableError(
                "vLLM is not installed (it needs a CUDA GPU)",
                hint="pip install 'slmkit[gpu]' on a GPU machine, or run `vllm serve MODEL` "
                "elsewhere and use openai:http://HOST:8000/v1#MODEL",
            ) from exc
        self.name = model
        engine_args.setdefault("enable_prefix_caching", True)
        self._llm = vllm.LLM(model=location, **engine_args)

    def _params(self, constraint: Constraint | None, sampling: Sampling) -> Any:
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {
            "n": sampling.n,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "stop": list(sampling.stop) or None,
            "logprobs": 0 if sampling.logprobs else None,
        }
        if constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = (
                StructuredOutputsParams(json=constraint.json_schema)
                if constraint.kind == "json"
                else StructuredOutputsParams(grammar=constraint.lark)
            )
        return SamplingParams(**kwargs)

    def _generate_batch(
        self,
        conversations: list[list[Message]],
        constraint: Constraint | None,
        sampling: Sampling,
    ) -> list[tuple[list[RawOutput], int]]:
        from slmkit.models.chat_format import to_text_messages

        params = self._params(constraint, sampling)
        texts = [to_text_messages(c) for c in conversations]
        responses = self._llm.chat(texts, params, use_tqdm=False)
        results = []
        for resp in responses:
            outputs = []
            for o in resp.outputs:
                lps = None
                if o.logprobs:
                    lps = tuple(
                        float(step[tok].logprob)
                        for step, tok in zip(o.logprobs, o.token_ids, strict=False)
                    )
                outputs.append(
                    RawOutput(
                        text=o.text,
                        completion_tokens=len(o.token_ids),
                        finish_reason=o.finish_reason or "stop",
                        token_logprobs=lps,
                    )
                )
            results.append((outputs, len(resp.prompt_token_ids or [])))
        return results
