"""What slmkit sends to vLLM, pinned against vLLM's own fields (vLLM cannot run here).

The field names below were read from the vLLM 0.11.0 wheel (the ``gpu`` extra's floor):
``ChatCompletionRequest`` in ``vllm/entrypoints/openai/protocol.py``, and
``SamplingParams`` / ``StructuredOutputsParams`` in ``vllm/sampling_params.py``. The
current vLLM (``vllm/entrypoints/openai/chat_completion/protocol.py``) still has every
one slmkit sends; the ``guided_*`` fields it replaced were removed in 0.12.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any

import pytest
from servers import FlakyServer, flaky_server

from slmkit.models import Constraint
from slmkit.models.base import Sampling
from slmkit.models.openai_compat import OpenAICompatModel
from slmkit.models.vllm_backend import VllmModel

VLLM_CHAT_REQUEST_FIELDS = frozenset(
    [
        "messages",
        "model",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "presence_penalty",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "reasoning_effort",
        "include_reasoning",
        "parallel_tool_calls",
        "user",
        "use_beam_search",
        "top_k",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "min_tokens",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "prompt_logprobs",
        "allowed_token_ids",
        "bad_words",
        "echo",
        "add_generation_prompt",
        "continue_final_message",
        "add_special_tokens",
        "documents",
        "chat_template",
        "chat_template_kwargs",
        "mm_processor_kwargs",
        "structured_outputs",
        "priority",
        "request_id",
        "logits_processors",
        "return_tokens_as_token_ids",
        "return_token_ids",
        "cache_salt",
        "kv_transfer_params",
        "vllm_xargs",
    ]
)
STRUCTURED_OUTPUTS_FIELDS = frozenset(
    [
        "json",
        "regex",
        "choice",
        "grammar",
        "json_object",
        "disable_fallback",
        "disable_any_whitespace",
        "disable_additional_properties",
        "whitespace_pattern",
        "structural_tag",
    ]
)
SAMPLING_PARAMS_FIELDS = frozenset(
    [
        "n",
        "best_of",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "stop_token_ids",
        "ignore_eos",
        "max_tokens",
        "min_tokens",
        "logprobs",
        "prompt_logprobs",
        "detokenize",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "logits_processors",
        "include_stop_str_in_output",
        "truncate_prompt_tokens",
        "output_kind",
        "structured_outputs",
        "logit_bias",
        "allowed_token_ids",
        "extra_args",
        "bad_words",
    ]
)

ASK = [{"role": "user", "content": "Name a pet."}]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
GRAMMAR = 'start: "yes" | "no"'


def test_the_vllm_dialect_sends_vllms_documented_fields() -> None:
    server = FlakyServer(0)
    with flaky_server(server) as base:
        model = OpenAICompatModel(base, "Qwen/Qwen2.5-0.5B-Instruct", dialect="vllm")
        model.chat(ASK, schema=SCHEMA, max_tokens=32, temperature=0.5, top_p=0.9, seed=7,
                   n=2, stop=["\n\n"], logprobs=True)  # fmt: skip
        model.chat(ASK, grammar=GRAMMAR, max_tokens=4)
        model.close()
    json_body, grammar_body = server.bodies
    assert json_body == {
        "model": "Qwen/Qwen2.5-0.5B-Instruct",
        "messages": ASK,
        "max_completion_tokens": 32,
        "temperature": 0.5,
        "top_p": 0.9,
        "structured_outputs": {"json": Constraint.from_schema(SCHEMA).json_schema},
        "seed": 7,
        "stop": ["\n\n"],
        "logprobs": True,
        "n": 2,
    }
    assert grammar_body["structured_outputs"] == {"grammar": GRAMMAR}
    for body in server.bodies:
        assert set(body) <= VLLM_CHAT_REQUEST_FIELDS, set(body) - VLLM_CHAT_REQUEST_FIELDS
        outputs = body["structured_outputs"]
        assert isinstance(outputs, dict) and set(outputs) <= STRUCTURED_OUTPUTS_FIELDS


def _fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``vllm`` whose parameter classes take exactly vLLM 0.11's field names."""

    def params_class(name: str, fields: frozenset[str]) -> type:
        return dataclasses.make_dataclass(name, [(f, Any, None) for f in sorted(fields)])

    vllm = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = params_class(  # type: ignore[attr-defined]
        "StructuredOutputsParams", STRUCTURED_OUTPUTS_FIELDS
    )
    vllm.SamplingParams = params_class("SamplingParams", SAMPLING_PARAMS_FIELDS)  # type: ignore[attr-defined]
    vllm.sampling_params = sampling  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)


def test_in_process_vllm_gets_sampling_params_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_vllm(monkeypatch)
    model = VllmModel.__new__(VllmModel)  # no engine: only the parameters are checked
    sampling = Sampling(max_tokens=16, temperature=0.7, seed=3, n=2, stop=("\n",), logprobs=True)
    params = model._params(Constraint.from_schema(SCHEMA), sampling)
    assert (params.max_tokens, params.n, params.seed, params.logprobs) == (16, 2, 3, 0)
    assert params.structured_outputs.json == Constraint.from_schema(SCHEMA).json_schema
    lark = model._params(Constraint.from_lark(GRAMMAR), Sampling())
    assert lark.structured_outputs.grammar == GRAMMAR and lark.structured_outputs.json is None
