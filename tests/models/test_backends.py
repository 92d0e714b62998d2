"""``load_model`` specs and the non-default backends, each against the real thing.

* ``transformers:smollm2``: the embedded GGUF converted once into an HF folder, decoded
  with ``generate`` under the same llguidance masks as llama.cpp.
* ``openai:``: a real OpenAI-compatible server (llama-cpp-python's) started on 127.0.0.1.
* ``vllm:``: needs a CUDA GPU; here it must fail with a hint, and the ``gpu`` test runs
  the real engine where a GPU and vLLM exist.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, ConfigDict, Field
from servers import free_port, llama_server

from slmkit.models import (
    BACKENDS,
    BackendUnavailableError,
    ChatModel,
    Constraint,
    ConstraintError,
    GenerationError,
    ModelError,
    ModelNotFoundError,
    PathNotFoundError,
    embedded_gguf,
    load_model,
    parse_spec,
)
from slmkit.models.openai_compat import OpenAICompatModel


class Pet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["cat", "dog", "fish"]
    age: int = Field(ge=1, le=20)
    name: str = Field(max_length=12)


PET_SCHEMA = Pet.model_json_schema()
ASK = [{"role": "user", "content": "Describe a pet as JSON."}]


# ----------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("llamacpp:smollm2", ("llamacpp", "smollm2")),
        ("  llamacpp:/models/x.gguf ", ("llamacpp", "/models/x.gguf")),
        ("/models/x.gguf", ("llamacpp", "/models/x.gguf")),
        ("transformers:HuggingFaceTB/SmolLM2-135M", ("transformers", "HuggingFaceTB/SmolLM2-135M")),
        ("openai:http://127.0.0.1:8000/v1#m", ("openai", "http://127.0.0.1:8000/v1#m")),
        ("vllm:Qwen/Qwen2.5-1.5B-Instruct", ("vllm", "Qwen/Qwen2.5-1.5B-Instruct")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected
    assert expected[0] in BACKENDS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt4all:foo", "cannot read model spec"),
        ("smollm2", "cannot read model spec"),
        ("llamacpp:", "names no model"),
        ("openai:127.0.0.1:8000/v1#m", "cannot read openai target"),
        ("openai:http://127.0.0.1:8000/v1", "cannot read openai target"),
        ("openai:http://127.0.0.1:8000/v1#m;dialect=tgi", "unknown option"),
        ("openai:http://127.0.0.1:8000/v1#m;temperature=1", "unknown option"),
    ],
)
def test_bad_specs_fail_clearly(spec: str, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message) as info:
        load_model(spec, cache=False)
    assert info.value.hint, "every error says what to do"


@pytest.mark.parametrize("spec", [None, 3, Path("model.gguf")])
def test_a_spec_that_is_not_a_str_fails_clearly(spec: object) -> None:
    with pytest.raises(ModelNotFoundError, match="a model spec is a str") as info:
        load_model(spec, cache=False)  # type: ignore[arg-type]
    assert info.value.hint and "llamacpp:smollm2" in info.value.hint


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("llamacpp:/no/such/model.gguf", "no GGUF file at '/no/such/model.gguf'"),
        ("llamacpp:nosuch", "no GGUF file at 'nosuch'"),
        ("/no/such/model.gguf", "no GGUF file at"),
        ("transformers:/no/such/folder", "no model file or folder at '/no/such/folder'"),
    ],
)
def test_specs_naming_missing_files_fail_clearly(spec: str, message: str) -> None:
    with pytest.raises(PathNotFoundError, match=message) as info:
        load_model(spec, cache=False)
    assert info.value.hint, "every error says what to do"


def test_a_file_that_is_not_a_model_fails_clearly(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelNotFoundError, match="could not load") as info:
        load_model(str(fake), cache=False)
    assert info.value.hint


@pytest.mark.parametrize(
    ("name", "hinted"), [("empty", "save_pretrained"), ("x.gguf", "llamacpp:")]
)
def test_a_folder_or_gguf_that_is_no_hf_model_fails_clearly_for_transformers(
    tmp_path: Path, name: str, hinted: str
) -> None:
    target = tmp_path / name
    target.mkdir() if name == "empty" else target.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelNotFoundError, match="not a Hugging Face model folder") as info:
        load_model(f"transformers:{target}", cache=False)
    assert info.value.hint and hinted in info.value.hint


@pytest.mark.parametrize(
    ("spec", "option", "listed"),
    [
        ("llamacpp:smollm2", "n_context", "n_ctx"),
        ("openai:http://127.0.0.1:8000/v1#m;dialect=vllm", "retry", "retries"),
        ("transformers:smollm2", "device_map", "device"),
    ],
)
def test_an_option_the_backend_does_not_take_is_named_with_those_it_does(
    spec: str, option: str, listed: str
) -> None:
    with pytest.raises(ModelError, match=f"takes no option '{option}'") as info:
        load_model(spec, cache=False, **{option: 1})
    assert info.value.hint and listed in info.value.hint.split(": ")[1].split(", ")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.chat("Say hello."), "a conversation is a list of messages, not a str"),
        (lambda m: m.chat({"role": "user", "content": "hi"}), "not a dict"),
        (lambda m: m.chat_batch(ASK), "not a dict"),  # one conversation, not a list of them
        (lambda m: m.request("Say hello."), "not a str"),
        (lambda m: m.chat([]), "empty conversation"),
        (lambda m: m.chat([{"role": "robot", "content": "hi"}]), "message 0 is not a chat"),
    ],
)
def test_conversations_in_the_wrong_shape_fail_clearly(
    smollm: ChatModel, call: Any, message: str
) -> None:
    with pytest.raises(ModelError, match=message) as info:
        call(smollm)
    assert info.value.hint


def test_models_are_cached_per_spec(smollm: ChatModel) -> None:
    assert load_model("llamacpp:smollm2") is smollm
    assert smollm.backend == "llamacpp" and smollm.name == "smollm2"
    assert repr(smollm) == "<LlamaCppModel llamacpp:smollm2>"


def test_vllm_without_vllm_raises_with_a_hint() -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(BackendUnavailableError, match="vLLM is not installed") as info:
        load_model("vllm:Qwen/Qwen2.5-0.5B-Instruct", cache=False)
    assert info.value.hint and "openai:" in info.value.hint
    assert isinstance(info.value, ModelError)


# ----------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def hf_model() -> ChatModel:
    return load_model("transformers:smollm2")


def test_transformers_smollm2_is_converted_once(hf_model: ChatModel) -> None:
    from slmkit.models.hf import convert_embedded, gguf_digest

    folder = convert_embedded("smollm2")
    assert (folder / "config.json").is_file() and (folder / ".complete").is_file()
    marker = json.loads((folder / ".complete").read_text())
    assert marker["sha256"] == gguf_digest(embedded_gguf())  # keyed on content, not path
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # a plain HF model training can load
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert convert_embedded("smollm2") == folder  # second call: no new conversion
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert not list(folder.parent.glob(f".{folder.name}.*"))  # no temporary folders left
    tok = hf_model.tokenizer  # type: ignore[attr-defined]
    assert tok.pad_token_id is not None  # the GGUF tokenizer has none; one was set


def test_a_tokenizer_saved_with_the_wrong_decoder_is_repaired_for_grammars(
    tmp_path: Path,
) -> None:
    """Older transformers write SmolLM2's GGUF tokenizer with a SentencePiece decoder:
    llguidance then reads `` "`` as ``Ġ"`` and every constraint would mask the wrong text."""
    from transformers import AutoTokenizer

    from slmkit.models.hf import convert_embedded, grammar_tokenizer

    for f in convert_embedded("smollm2").glob("*token*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["decoder"] = {
        "type": "Sequence",
        "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}],
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    lltok = grammar_tokenizer(tok, 49152, "broken")
    ids = tok.encode('{"a": "b c"}', add_special_tokens=False)
    assert bytes(lltok.decode_bytes(ids)) == b'{"a": "b c"}'

    data["pre_tokenizer"] = {"type": "Whitespace"}  # not byte-level: nothing to repair
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(BackendUnavailableError, match="constraints cannot be enforced"):
        grammar_tokenizer(AutoTokenizer.from_pretrained(str(tmp_path)), 49152, "broken")


def test_transformers_constrained_n_and_batch(hf_model: ChatModel) -> None:
    out = hf_model.chat(ASK, schema=Pet, max_tokens=40, temperature=1.0, seed=3, n=2)
    assert out.constrained and len(out.candidates) == 2
    for c in out.candidates:
        assert c.valid, (c.text, c.error)
        assert isinstance(c.parsed, Pet)
        assert c.confidence is not None and 0 < c.confidence <= 1
    # Conversations of different lengths: left padding must not leak into the outputs.
    batch = [
        ASK,
        [
            {"role": "system", "content": "You are a vet who answers in JSON."},
            {"role": "user", "content": "Tell me about the oldest dog you treated today."},
        ],
    ]
    outs = hf_model.chat_batch(batch, schema=PET_SCHEMA, max_tokens=40)
    assert len(outs) == 2
    for o in outs:
        assert o.valid, (o.text, o.error)
        jsonschema.validate(json.loads(o.text), PET_SCHEMA)
        assert o.usage.prompt_tokens > 0 and o.usage.completion_tokens > 0
    # Each row counts its own prompt, not the padded width of the batch.
    assert outs[0].usage.prompt_tokens != outs[1].usage.prompt_tokens


def test_transformers_lark_grammar(hf_model: ChatModel) -> None:
    out = hf_model.chat(ASK, grammar='start: "Answer: " ("yes" | "no")', max_tokens=8)
    assert out.valid and out.text in ("Answer: yes", "Answer: no")


# ----------------------------------------------------------------------------- openai server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the embedded model; its base URL."""
    with llama_server(tmp_path_factory.mktemp("server") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def remote(server: str) -> Iterator[ChatModel]:
    model = load_model(f"openai:{server}#smollm2", cache=False)
    yield model
    model.close()


def test_openai_dialect_is_detected(remote: ChatModel) -> None:
    assert isinstance(remote, OpenAICompatModel)
    assert remote.dialect == "llamacpp"  # llama.cpp's server does not say "vllm"
    assert remote.backend == "openai" and not remote.supports_grammar


def test_openai_llamacpp_json_schema_is_enforced(remote: ChatModel) -> None:
    out = remote.chat(ASK, schema=Pet, max_tokens=60, temperature=0.0)
    assert out.constrained and out.valid, (out.text, out.error)
    assert isinstance(out.parsed, Pet)
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    # n > 1: llama.cpp's server ignores n, so each sample is its own request.
    many = remote.chat(ASK, schema=PET_SCHEMA, max_tokens=60, temperature=1.0, seed=5, n=2)
    assert len(many.candidates) == 2
    for c in many.candidates:
        assert c.valid, (c.text, c.error)
        jsonschema.validate(json.loads(c.text), PET_SCHEMA)


def test_openai_batch_and_free_text(remote: ChatModel) -> None:
    outs = remote.chat_batch([ASK, [{"role": "user", "content": "Say hi."}]], max_tokens=8)
    assert len(outs) == 2 and all(o.valid and not o.constrained for o in outs)
    assert all(o.text and o.usage.completion_tokens > 0 for o in outs)


def test_openai_lark_grammar_to_llamacpp_fails_before_sending(
    remote: ChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(remote, "_post", lambda body: sent.append(body))
    with pytest.raises(ConstraintError, match="cannot enforce a Lark grammar") as info:
        remote.chat(ASK, grammar='start: "yes" | "no"')
    assert info.value.hint and "vllm" in info.value.hint
    assert sent == []
    # The dialect check itself refuses too (for callers that skip the ChatModel layer).
    assert isinstance(remote, OpenAICompatModel)
    with pytest.raises(ConstraintError):
        remote._constraint_params(Constraint.from_lark('start: "x"'))


def test_openai_request_bodies_per_dialect(server: str) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    json_c = Constraint.from_schema(schema)
    lark_c = Constraint.from_lark('start: "yes" | "no"')
    vllm = OpenAICompatModel.from_target(f"{server}#smollm2;dialect=vllm")
    assert vllm.dialect == "vllm" and vllm.supports_grammar
    assert vllm._constraint_params(json_c) == {"structured_outputs": {"json": schema}}
    assert vllm._constraint_params(lark_c) == {
        "structured_outputs": {"grammar": 'start: "yes" | "no"'}
    }
    openai = OpenAICompatModel.from_target(f"{server}#smollm2;dialect=openai")
    assert openai._constraint_params(json_c) == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    }
    llamacpp = OpenAICompatModel.from_target(f"{server}#smollm2;dialect=llamacpp")
    assert llamacpp._constraint_params(json_c) == {
        "response_format": {"type": "json_object", "schema": schema}
    }
    assert llamacpp._constraint_params(None) == {}
    for m in (vllm, openai, llamacpp):
        m.close()


def test_a_wrong_dialect_is_caught_by_validation(server: str) -> None:
    """A llama.cpp server ignores vLLM's ``structured_outputs``: the output is free text.

    slmkit cannot stop a server from ignoring a field, but it validates every output, so
    the call reports ``valid=False`` with the reason instead of passing free text off
    as constrained output.
    """
    wrong = OpenAICompatModel.from_target(f"{server}#smollm2;dialect=vllm")
    schema = {
        "type": "object",
        "properties": {"zebra_count": {"type": "integer", "minimum": 1000, "maximum": 1001}},
        "required": ["zebra_count"],
        "additionalProperties": False,
    }
    out = wrong.chat([{"role": "user", "content": "Say hello."}], schema=schema, max_tokens=16)
    wrong.close()
    assert out.constrained and not out.valid
    assert out.error and ("invalid JSON" in out.error or "zebra_count" in out.error)


def test_openai_server_down_is_a_generation_error() -> None:
    model = OpenAICompatModel.from_target(f"http://127.0.0.1:{free_port()}/v1#m;dialect=vllm")
    with pytest.raises(GenerationError, match="failed") as info:
        model.chat(ASK, max_tokens=4)
    assert info.value.hint and "server running" in info.value.hint
    model.close()


def test_loading_from_a_server_not_started_fails_at_once_with_a_hint() -> None:
    """Detecting the dialect asks the server; a refused connection is not retried then."""
    with pytest.raises(GenerationError, match=r"after 1 attempt\(s\)") as info:
        OpenAICompatModel.from_target(f"http://127.0.0.1:{free_port()}/v1#m")
    assert info.value.hint and "dialect=" in info.value.hint


def test_openai_unknown_model_is_a_generation_error(server: str) -> None:
    model = OpenAICompatModel.from_target(f"{server}#no-such-model")
    try:
        out = model.chat(ASK, max_tokens=4)
    except GenerationError as exc:  # servers that check the name answer 4xx
        assert exc.hint
    else:  # llama.cpp's server serves its one model whatever the name
        assert out.text is not None
    finally:
        model.close()


# ----------------------------------------------------------------------------- vllm (GPU)


@pytest.mark.gpu
def test_vllm_backend_on_a_gpu() -> None:
    """The real in-process vLLM engine on the embedded model's HF folder (needs a GPU)."""
    pytest.importorskip("vllm")
    from slmkit.models.hf import convert_embedded

    folder = convert_embedded("smollm2")
    model = load_model(
        f"vllm:{folder}", cache=False, gpu_memory_utilization=0.3, max_model_len=2048
    )
    try:
        outs = model.chat_batch([ASK, ASK], schema=Pet, max_tokens=60, temperature=1.0, n=3)
        assert len(outs) == 2
        for o in outs:
            assert len(o.candidates) == 3
            assert all(c.valid and isinstance(c.parsed, Pet) for c in o.candidates)
        lark = model.chat(ASK, grammar='start: "Answer: " ("yes" | "no")', max_tokens=8)
        assert lark.text in ("Answer: yes", "Answer: no")
    finally:
        model.close()
