"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 that answers oddly.

A web page where the API should be, broken JSON, an ``error`` in a 200, no ``choices``,
a 4xx with an error body: each is a ``GenerationError`` that quotes what the server said
and hints at what to check, never a ``KeyError``/``TypeError``; none is retried. Fields
that real servers leave out or set to null (``usage``, ``content``, ``logprobs``) read
as absent.
"""

from __future__ import annotations

import json

import pytest
from servers import ScriptedServer, flaky_server, free_port

from slmkit.models import GenerationError, ModelNotFoundError
from slmkit.models.openai_compat import OpenAICompatModel

ASK = [{"role": "user", "content": "Say hello."}]
HTML = b"<html><head><title>Welcome to nginx!</title></head><body>It works</body></html>"


def ask(server: ScriptedServer, **options: object) -> object:
    with flaky_server(server) as base:
        model = OpenAICompatModel(base, "m", dialect="llamacpp", retries=2, backoff_s=0.01)
        try:
            return model.chat(ASK, max_tokens=4, **options)  # type: ignore[arg-type]
        finally:
            model.close()


def choice(**fields: object) -> dict[str, object]:
    return {"message": {"role": "assistant", "content": "hi"}, **fields}


@pytest.mark.parametrize(
    ("status", "body", "content_type", "said", "hinted"),
    [
        (200, HTML, "text/html", "text/html, not a JSON object: <html>", "/v1"),
        (200, b'{"choices": [', "application/json", "not a JSON object", "/v1"),
        (200, b"", "application/json", "an empty body", "/v1"),
        (200, [1, 2], "application/json", "not a JSON object", "/v1"),
        (200, {"usage": {"prompt_tokens": 1}}, "application/json", "no choices", "log"),
        (200, {"choices": None}, "application/json", "no choices", "log"),
        (200, {"choices": []}, "application/json", "no choices", "log"),
        (200, {"choices": ["hi"]}, "application/json", "no choices", "log"),
        (200, {"error": {"message": "model is loading"}}, "application/json", "is loading", "log"),
        (404, {"error": {"message": "The model `m` does not exist."}}, "application/json",
         "answered 404: The model `m` does not exist.", "/models"),
        (401, {"error": {"message": "Invalid API key"}}, "application/json",
         "answered 401: Invalid API key", "OPENAI_API_KEY"),
        (400, {"detail": "max_tokens is too large"}, "application/json",
         "answered 400: max_tokens is too large", "dialect"),
        (404, HTML, "text/html", "answered 404: <html>", "/v1"),
        (501, HTML, "text/html", "answered 501: <html>", "OpenAI-compatible"),
        (501, {"error": {"message": "n > 1"}}, "application/json", "501: n > 1", "its log"),
    ],
)  # fmt: skip
def test_an_odd_answer_is_a_generation_error_that_says_what_came_back(
    status: int, body: object, content_type: str, said: str, hinted: str
) -> None:
    server = ScriptedServer(status, body, content_type)
    with pytest.raises(GenerationError) as err:
        ask(server)
    assert said in err.value.message and "/chat/completions" in err.value.message
    assert err.value.hint and hinted in err.value.hint
    assert len(server.hits) == 1, "asking again cannot fix this answer"


def test_a_5xx_html_page_is_retried_and_quoted_without_its_markup_layout() -> None:
    server = ScriptedServer(502, b"<html>\n  <h1>502 Bad Gateway</h1>\n</html>", "text/html")
    with pytest.raises(GenerationError, match=r"answered 502: <html> <h1>502 Bad Gateway"):
        ask(server)
    assert len(server.hits) == 3


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": [choice(finish_reason=None)], "usage": None},
        {"choices": [choice()], "usage": {"prompt_tokens": None, "completion_tokens": "2"}},
        {"choices": [choice(logprobs={"content": [{"token": "hi"}]})]},
        {"choices": [choice(logprobs=None)]},
        {"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}]},
    ],
)
def test_fields_servers_leave_out_or_null_read_as_absent(answer: dict[str, object]) -> None:
    out = ask(ScriptedServer(200, answer), logprobs=True)
    assert out.text == "hi" and out.finish_reason == "stop"  # type: ignore[attr-defined]
    assert out.usage.prompt_tokens == 0 and out.first.mean_logprob is None  # type: ignore[attr-defined]


def test_logprobs_and_usage_are_read_when_present() -> None:
    answer = {
        "choices": [choice(finish_reason="length", logprobs={"content": [{"logprob": -0.5}]})],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1},
    }
    out = ask(ScriptedServer(200, json.dumps(answer).encode()), logprobs=True)
    assert out.finish_reason == "length" and out.first.mean_logprob == -0.5  # type: ignore[attr-defined]
    assert out.usage.prompt_tokens == 7  # type: ignore[attr-defined]


def test_dialect_detection_against_nothing_listening_says_how_to_skip_it() -> None:
    with pytest.raises(GenerationError, match="cannot detect the dialect") as err:
        OpenAICompatModel(f"http://127.0.0.1:{free_port()}/v1", "m", retries=0)
    assert err.value.hint and ";dialect=" in err.value.hint


def test_dialect_detection_on_a_server_without_models_falls_back_to_llamacpp() -> None:
    with flaky_server(ScriptedServer(200, {"choices": [choice()]})) as base:  # GET: 501
        model = OpenAICompatModel(base, "m", retries=0)
        assert model.dialect == "llamacpp"
        model.close()


@pytest.mark.parametrize("url", ["localhost:8000/v1", "127.0.0.1:8000", "ftp://host/v1", "http://"])
def test_a_url_without_http_scheme_and_host_fails_at_once(url: str) -> None:
    with pytest.raises(ModelNotFoundError, match="cannot read the server URL") as err:
        OpenAICompatModel(url, "m", dialect="llamacpp")
    assert err.value.hint and "http://127.0.0.1:8000/v1" in err.value.hint
