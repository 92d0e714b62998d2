"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 that fails.

Connection errors, timeouts, 408/429/5xx are retried with bounded backoff (the server's
``Retry-After`` honoured); other 4xx are not; when retries run out the call fails with
the last error and says how many attempts it made.
"""

from __future__ import annotations

from typing import Any

import pytest
from servers import FlakyServer, flaky_server, free_port

from slmkit.models import GenerationError
from slmkit.models.openai_compat import OpenAICompatModel

ASK = [{"role": "user", "content": "Say hello."}]


def client(base: str, **options: Any) -> OpenAICompatModel:
    options = {"retries": 4, "backoff_s": 0.01, "max_backoff_s": 0.05, **options}
    return OpenAICompatModel(base, "m", dialect="llamacpp", **options)


@pytest.mark.parametrize("status", [503, 429, 502])
def test_a_server_that_recovers_is_retried_until_it_answers(status: int) -> None:
    server = FlakyServer(3, status=status)
    with flaky_server(server) as base:
        model = client(base)
        out = model.chat(ASK, max_tokens=4)
        model.close()
    assert out.text == "hello" and out.usage.completion_tokens == 1
    assert len(server.hits) == 4


def test_retry_after_is_honoured() -> None:
    server = FlakyServer(1, headers={"Retry-After": "1"})
    with flaky_server(server) as base:
        model = client(base)
        assert model.chat(ASK, max_tokens=4).text == "hello"
        model.close()
    assert len(server.hits) == 2
    assert server.hits[1] - server.hits[0] >= 0.9, "waited as long as the server asked"


def test_a_server_that_never_recovers_fails_with_the_last_error() -> None:
    server = FlakyServer(None, status=503)
    with flaky_server(server) as base:
        model = client(base, retries=2)
        with pytest.raises(GenerationError, match=r"answered 503.*after 3 attempt") as err:
            model.chat(ASK, max_tokens=4)
        model.close()
    assert len(server.hits) == 3 and err.value.hint


def test_a_client_error_is_not_retried() -> None:
    server = FlakyServer(None, status=400)
    with flaky_server(server) as base:
        model = client(base)
        with pytest.raises(GenerationError, match="answered 400"):
            model.chat(ASK, max_tokens=4)
        model.close()
    assert len(server.hits) == 1, "asking again cannot fix a bad request"


def test_a_stalled_request_times_out_and_is_retried() -> None:
    server = FlakyServer(1, stall_s=3.0)
    with flaky_server(server) as base:
        model = client(base, timeout_s=0.5)
        assert model.chat(ASK, max_tokens=4).text == "hello"
        model.close()
    assert len(server.hits) == 2


def test_nothing_listening_fails_after_the_retries() -> None:
    model = client(f"http://127.0.0.1:{free_port()}/v1", retries=1)
    with pytest.raises(GenerationError, match=r"ConnectError.*after 2 attempt") as err:
        model.chat(ASK, max_tokens=4)
    assert "server running" in (err.value.hint or "")
    model.close()
