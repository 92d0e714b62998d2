"""``load_model(spec)``: one string picks a backend and a model.

Spec forms::

    llamacpp:smollm2                      the embedded SmolLM2-135M GGUF (default)
    llamacpp:/path/model.gguf             any GGUF file
    transformers:smollm2                  the embedded GGUF converted once to an HF folder
    transformers:<folder or hub id>       any HF causal LM (a hub id needs hub access)
    openai:<base_url>#<model>[;dialect]   any OpenAI-compatible server (vllm, llamacpp, openai)
    vllm:<model id or folder>             in-process vLLM (GPU only, optional extra)

Loaded models are cached per spec, so agents, tools and the CLI share one copy.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from slmkit.models.base import ChatModel
from slmkit.models.embedded import EMBEDDED_MODELS, embedded_gguf
from slmkit.models.errors import ModelError, ModelNotFoundError

__all__ = ["BACKENDS", "DEFAULT_SPEC", "batching_options", "load_model", "parse_spec"]

DEFAULT_SPEC = "llamacpp:smollm2"
BACKENDS = ("llamacpp", "transformers", "openai", "vllm")

_cache: dict[tuple[str, tuple[tuple[str, Any], ...]], ChatModel] = {}
_lock = threading.Lock()


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``backend:target``; a bare path to a .gguf file means llamacpp."""
    if not isinstance(spec, str):
        raise ModelNotFoundError(
            f"a model spec is a str, not {type(spec).__name__}",
            hint=f"e.g. {DEFAULT_SPEC}; str(path) for a pathlib.Path to a .gguf file",
        )
    spec = spec.strip()
    backend, sep, target = spec.partition(":")
    if not sep or backend not in BACKENDS:
        if spec.endswith(".gguf"):
            return "llamacpp", spec
        raise ModelNotFoundError(
            f"cannot read model spec {spec!r}",
            hint=f"use BACKEND:TARGET with BACKEND one of {', '.join(BACKENDS)}, "
            f"e.g. {DEFAULT_SPEC} or openai:http://127.0.0.1:8000/v1#my-model",
        )
    if not target:
        raise ModelNotFoundError(f"model spec {spec!r} names no model", hint=f"e.g. {DEFAULT_SPEC}")
    return backend, target


def batching_options(spec: str, concurrency: int) -> dict[str, Any]:
    """Backend options that let ``concurrency`` concurrent callers decode together.

    llama.cpp gets that many sequences per context (``parallel``); an OpenAI-compatible
    client that many requests in flight. transformers and vLLM batch whatever arrives
    (up to their ``max_batch``) and need nothing. Options a caller sets win over these.
    """
    backend, _ = parse_spec(spec)
    if concurrency <= 1:
        return {}
    if backend == "llamacpp":
        return {"parallel": concurrency}
    if backend == "openai":
        return {"concurrency": concurrency}
    return {}


def load_model(spec: str = DEFAULT_SPEC, *, cache: bool = True, **options: Any) -> ChatModel:
    """Load (or reuse) the chat model named by ``spec``; ``options`` go to the backend."""
    key = (spec, tuple(sorted(options.items())))
    with _lock:
        if cache and key in _cache:
            return _cache[key]
        model = _load(spec, options)
        if cache:
            _cache[key] = model
        return model


def _load(spec: str, options: dict[str, Any]) -> ChatModel:
    backend, target = parse_spec(spec)
    if backend == "llamacpp":
        from slmkit.models.llamacpp import LlamaCppModel

        _check_options(LlamaCppModel, backend, options)
        path = embedded_gguf(target) if target in EMBEDDED_MODELS else target
        name = target if target in EMBEDDED_MODELS else None
        return LlamaCppModel(path, name=name, **options)
    if backend == "transformers":
        from slmkit.models.hf import TransformersModel

        _check_options(TransformersModel, backend, options)
        return TransformersModel(target, **options)
    if backend == "openai":
        from slmkit.models.openai_compat import OpenAICompatModel

        _check_options(OpenAICompatModel, backend, options)
        return OpenAICompatModel.from_target(target, **options)
    from slmkit.models.vllm_backend import VllmModel

    return VllmModel(target, **options)  # the rest of its options go to vllm.LLM


def _check_options(cls: type[ChatModel], backend: str, options: dict[str, Any]) -> None:
    """Refuse an option the backend does not take, naming the ones it does."""
    params = inspect.signature(cls.__init__).parameters
    known = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "name"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelError(
            f"the {backend} backend takes no option {', '.join(map(repr, unknown))}",
            hint=f"its options: {', '.join(known)}",
        )
