"""Chat models with grammar-constrained decoding.

``load_model(spec)`` returns a :class:`ChatModel` for one of four backends (llama.cpp,
transformers, OpenAI-compatible servers, in-process vLLM). ``model.chat(messages,
schema=...)`` decodes under the schema, so the output can only be valid JSON of it.
"""

from slmkit.models.base import (
    Candidate,
    ChatModel,
    ChatOptions,
    Completion,
    Generation,
    Message,
    RawOutput,
    Request,
    RowResult,
    Sampling,
    TokenTrace,
    Usage,
)
from slmkit.models.chat_format import decode_arguments, to_text_messages
from slmkit.models.embedded import EMBEDDED_MODELS, embedded_gguf
from slmkit.models.errors import (
    BackendUnavailableError,
    ConstraintError,
    DataError,
    GenerationError,
    ModelError,
    ModelNotFoundError,
    PathNotFoundError,
    PromptError,
    SlmkitError,
)
from slmkit.models.guidance import GrammarCache, TokenGate, closing_reserve
from slmkit.models.hf import TransformersModel, convert_embedded, end_of_turn, grammar_tokenizer
from slmkit.models.loader import BACKENDS, DEFAULT_SPEC, batching_options, load_model, parse_spec
from slmkit.models.paths import (
    cache_dir,
    existing_path,
    looks_like_path,
    model_location,
    path_or_text,
)
from slmkit.models.pkgdata import KNOWN_PACKAGES, cached_package, fetch_package
from slmkit.models.prompts import load_prompt, render_prompt, render_template
from slmkit.models.sampler import MIN_P
from slmkit.models.schema import Constraint, SchemaLike, to_json_schema
from slmkit.models.vllm_backend import VllmModel
from slmkit.models.wrapped import WrappedModel

__all__ = [
    "BACKENDS",
    "DEFAULT_SPEC",
    "EMBEDDED_MODELS",
    "KNOWN_PACKAGES",
    "MIN_P",
    "BackendUnavailableError",
    "Candidate",
    "ChatModel",
    "ChatOptions",
    "Completion",
    "Constraint",
    "ConstraintError",
    "DataError",
    "Generation",
    "GenerationError",
    "GrammarCache",
    "Message",
    "ModelError",
    "ModelNotFoundError",
    "PathNotFoundError",
    "PromptError",
    "RawOutput",
    "Request",
    "RowResult",
    "Sampling",
    "SchemaLike",
    "SlmkitError",
    "TokenGate",
    "TokenTrace",
    "TransformersModel",
    "Usage",
    "VllmModel",
    "WrappedModel",
    "batching_options",
    "cache_dir",
    "cached_package",
    "closing_reserve",
    "convert_embedded",
    "decode_arguments",
    "embedded_gguf",
    "end_of_turn",
    "existing_path",
    "fetch_package",
    "grammar_tokenizer",
    "load_model",
    "load_prompt",
    "looks_like_path",
    "model_location",
    "parse_spec",
    "path_or_text",
    "render_prompt",
    "render_template",
    "to_json_schema",
    "to_text_messages",
]
