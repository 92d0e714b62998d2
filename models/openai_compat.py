"""Any OpenAI-compatible server: ``vllm serve``, llama.cpp's server, hosted APIs.

Servers disagree on how to ask for constrained output, so each *dialect* says it its way:

========== =============================================== ===========================
dialect    JSON schema                                     Lark grammar
========== =============================================== ===========================
vllm       ``structured_outputs={"json": schema}``          ``{"grammar": lark}``
llamacpp   ``response_format={"type": "json_object",        not supported: error
           "schema": schema}``
openai     ``response_format={"type": "json_schema", ...}`` not supported: error
========== =============================================== ===========================

The ``vllm`` fields are those of vLLM >= 0.11 (``structured_outputs`` replaced the
``guided_*`` fields, removed in 0.12); vLLM and OpenAI get ``max_completion_tokens``,
which deprecates ``max_tokens``. tests/models/test_vllm_bodies.py pins the bodies.

Spec: ``openai:<base_url>#<model>`` with an optional ``;dialect=<name>`` suffix. Without
it the dialect is detected from ``GET /models`` (vLLM says ``owned_by: vllm``) and the
host (api.openai.com), and defaults to ``llamacpp``. The API key comes from
``$OPENAI_API_KEY`` (or ``api_key=``).

Servers restart, shed load and drop connections. Every request goes through
:meth:`OpenAICompatModel._request`, which tenacity retries on connection errors and
timeouts (``timeout_s`` per attempt) and on 408/429/5xx answers, waiting
``backoff_s * 2**attempt`` (jittered, at most ``max_backoff_s``) or what the server's
``Retry-After`` asks (at most ``max_retry_after_s``), ``retries`` times; then the call
fails with the last error. Only the dialect check at load time fails on the first refused
connection: nothing listening then is a server not started, not a blip. Other 4xx
answers (a wrong model name, a bad body, a refused key) are not retried: asking again
cannot fix them; their error says what the server said (its ``error.message``) and what
to check for that status.

Whatever answers is read defensively: a body that is not JSON (an HTML page from a proxy
or a web server at the wrong URL), a JSON ``error`` in a 200 answer, or an answer without
``choices`` is a :class:`~slmkit.models.errors.GenerationError` saying what came back,
never a ``KeyError``; fields that servers leave out or set to ``null`` (``usage``, a
message's ``content``, ``logprobs``) read as absent.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
import tenacity

from slmkit.models.base import (
    ChatModel,
    Generation,
    Message,
    RawOutput,
    Request,
    RowResult,
    Sampling,
)
from slmkit.models.errors import ConstraintError, GenerationError, ModelNotFoundError
from slmkit.models.schema import Constraint

__all__ = ["Dialect", "OpenAICompatModel"]

Dialect = Literal["vllm", "llamacpp", "openai"]
_DIALECTS: tuple[Dialect, ...] = ("vllm", "llamacpp", "openai")
_MAX_TOKENS: dict[Dialect, str] = {  # vLLM and OpenAI deprecate max_tokens for this name
    "vllm": "max_completion_tokens",
    "openai": "max_completion_tokens",
    "llamacpp": "max_tokens",
}
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_ERRORS = (  # not UnsupportedProtocol or LocalProtocolError: our request is wrong
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
_STATUS_HINTS: dict[int, str] = {
    401: "the server refused the API key: set $OPENAI_API_KEY or pass api_key=",
    403: "the server refused the API key: set $OPENAI_API_KEY or pass api_key=",
    404: "check the model name (GET {base}/models lists what the server serves) and that "
    "the base URL is the API root (it usually ends in /v1)",
    413: "the request is too large for the server: shorten the conversation",
}
_NOT_AN_API = (
    "is the base URL the server's OpenAI API root (it usually ends in /v1)? a web page "
    "or a proxy answered instead of an OpenAI-compatible server"
)
_log = logging.getLogger(__name__)


class _RetryableStatus(Exception):
    """An answer worth asking again for (408, 429, 5xx); carries the response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.response = response


def _retry_after_s(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (it is a number or an HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _said(response: httpx.Response) -> str:
    """What an answer says, for an error message: its JSON ``error.message`` or its text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str) and error:
            return error[:300]
    return " ".join(response.text.split())[:300] or "(an empty body)"


def _count(value: Any) -> int:
    """A token count from ``usage``; servers send null or leave it out."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(content: Any) -> str:
    """A message's ``content``: a string, null, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text", "")) for p in parts)
    return ""


def _logprobs(choice: dict[str, Any]) -> tuple[float, ...] | None:
    """The sampled tokens' log-probabilities, or None when the server gave none usable."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    values = [t.get("logprob") for t in content if isinstance(t, dict)]
    floats = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return tuple(floats) if len(floats) == len(content) else None  # all tokens, or none


class OpenAICompatModel(ChatModel):
    """A chat model behind an OpenAI-compatible HTTP API."""

    backend = "openai"
    supports_logprobs = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        dialect: Dialect | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        concurrency: int = 8,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 60.0,
    ) -> None:
        """Connect to ``base_url`` (see the module docs for retries and timeouts)."""
        url = urlparse(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ModelNotFoundError(
                f"cannot read the server URL {base_url!r}",
                hint="give the API root with its scheme, e.g. http://127.0.0.1:8000/v1",
            )
        self.base_url = base_url.rstrip("/")
        self.name = model
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout_s,
        )
        self._concurrency = concurrency
        self._retries = max(0, retries)
        self._backoff = tenacity.wait_exponential(
            multiplier=backoff_s, max=max_backoff_s
        ) + tenacity.wait_random(0, backoff_s)
        self._max_retry_after_s = max_retry_after_s
        self.dialect: Dialect = dialect or self._detect_dialect()
        self.supports_grammar = self.dialect == "vllm"

    @classmethod
    def from_target(cls, target: str, **options: Any) -> OpenAICompatModel:
        """Parse ``<base_url>#<model>[;dialect=<name>]``."""
        base, _, rest = target.partition("#")
        model, _, params = rest.partition(";")
        if not base.startswith(("http://", "https://")) or not model:
            raise ModelNotFoundError(
                f"cannot read openai target {target!r}",
                hint="use openai:http://127.0.0.1:8000/v1#model-name[;dialect=vllm]",
            )
        for part in filter(None, params.split(";")):
            k, _, v = part.partition("=")
            if k != "dialect" or v not in _DIALECTS:
                raise ModelNotFoundError(
                    f"unknown option {part!r} in {target!r}",
                    hint=f"the only option is dialect=, one of {', '.join(_DIALECTS)}",
                )
            options.setdefault("dialect", v)
        return cls(base, model, **options)

    def _detect_dialect(self) -> Dialect:
        if urlparse(self.base_url).hostname == "api.openai.com":
            return "openai"
        try:
            answer = self._request("GET", "/models", retry_refused=False).json()
        except GenerationError as exc:
            if isinstance(exc.__cause__, httpx.TransportError):  # nothing is listening
                raise GenerationError(
                    f"cannot detect the dialect of {self.base_url}: {exc.message}",
                    hint="start the server first, or name the dialect in the spec "
                    "(openai:URL#MODEL;dialect=vllm) so nothing is asked before the first call",
                ) from exc
            return "llamacpp"
        except ValueError:  # not JSON: a server without /models
            return "llamacpp"
        data = answer.get("data") if isinstance(answer, dict) else None
        models = data if isinstance(data, list) else []
        owners = {str(m.get("owned_by", "")).lower() for m in models if isinstance(m, dict)}
        return "vllm" if "vllm" in owners else "llamacpp"

    def _constraint_params(self, constraint: Constraint | None) -> dict[str, Any]:
        if constraint is None:
            return {}
        if constraint.kind == "lark":
            if self.dialect != "vllm":
                raise ConstraintError(
                    f"a {self.dialect} server cannot enforce a Lark grammar",
                    hint="serve the model with vLLM (dialect=vllm) or run it locally "
                    "with the llamacpp/transformers backend",
                )
            return {"structured_outputs": {"grammar": constraint.lark}}
        schema = constraint.json_schema
        if self.dialect == "vllm":
            return {"structured_outputs": {"json": schema}}
        if self.dialect == "llamacpp":
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        }

    def _one(self, request: Request) -> RowResult:
        """One row as one request (its error is its result)."""
        try:
            return self._ask(request.messages, request.constraint, request.sampling)
        except Exception as exc:  # this row fails alone
            return exc

    def _ask(
        self, messages: list[Message], constraint: Constraint | None, sampling: Sampling
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            _MAX_TOKENS[self.dialect]: sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            **self._constraint_params(constraint),
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.logprobs:
            body["logprobs"] = True
        # llama.cpp servers ignore n: ask once per sample there.
        asks = 1 if self.dialect != "llamacpp" else sampling.n
        if asks == 1:
            body["n"] = sampling.n
        outputs: list[RawOutput] = []
        prompt_tokens = 0
        for i in range(asks):
            if asks > 1 and sampling.seed is not None:
                body["seed"] = sampling.seed + i
            data = self._post(body)
            usage = data.get("usage")
            if not isinstance(usage, dict):
                usage = {}
            prompt_tokens = _count(usage.get("prompt_tokens"))
            choices = data["choices"]
            completion_total = _count(usage.get("completion_tokens"))
            for ch in choices:
                message = ch.get("message")
                outputs.append(
                    RawOutput(
                        text=_text(message.get("content") if isinstance(message, dict) else None),
                        completion_tokens=completion_total // len(choices),
                        finish_reason=str(ch.get("finish_reason") or "stop"),
                        token_logprobs=_logprobs(ch),
                    )
                )
        return Generation(outputs, prompt_tokens)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a chat request; its answer, checked to hold a list of choice objects.

        Raises:
            GenerationError: a 4xx answer, a body that is not a JSON object, a JSON
                ``error``, or no choices; the message quotes what the server said.
        """
        resp = self._request("POST", "/chat/completions", body)
        where = f"{self.base_url}/chat/completions"
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            raise GenerationError(
                f"{where} answered {resp.status_code}: {_said(resp)}",
                hint=self._status_hint(resp.status_code, isinstance(data, dict)),
            )
        if not isinstance(data, dict):
            kind = resp.headers.get("content-type", "no content-type")
            raise GenerationError(
                f"{where} answered {resp.status_code} with {kind}, not a JSON object: "
                f"{_said(resp)}",
                hint=_NOT_AN_API,
            )
        choices = data.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, dict) for c in choices)
        ):
            said = _said(resp) if "error" in data else f"no choices in {_said(resp)}"
            raise GenerationError(
                f"{where} answered {resp.status_code} without a completion: {said}",
                hint="the server accepted the request but generated nothing; check its log "
                "and that it serves chat completions for this model",
            )
        return data

    def _status_hint(self, status: int, json_error: bool) -> str:
        """What to check after a 4xx (or a 5xx not worth retrying) answer."""
        if status in _STATUS_HINTS:
            return _STATUS_HINTS[status].format(base=self.base_url)
        if not json_error:  # API servers answer errors in JSON; a web page does not
            return _NOT_AN_API
        if status >= 500:
            return "the server failed on this request; its log says why"
        return (
            "check the request: the model's context length, max_tokens, and that the "
            f"server takes this dialect's fields ({self.dialect}; set ;dialect= if not)"
        )

    def _wait_s(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` when it sent one (capped), else jittered backoff."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableStatus):
            asked = _retry_after_s(error.response)
            if asked is not None:
                return min(asked, self._max_retry_after_s)
        return float(self._backoff(state))

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        retry_refused: bool = True,
    ) -> httpx.Response:
        """One HTTP request, retried (see the module docs): the first answer worth keeping.

        ``retry_refused=False``: a connection nothing accepts fails at once (at load time
        that is a server not started, which seconds of backoff do not fix).

        Raises:
            GenerationError: every attempt failed to connect, timed out, or got a
                retryable status; the message has the last error and the attempt count.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._retries + 1),
            wait=self._wait_s,
            retry=tenacity.retry_if_exception(
                lambda exc: (
                    isinstance(exc, (*_RETRY_ERRORS, _RetryableStatus))
                    and (retry_refused or not isinstance(exc, httpx.ConnectError))
                )
            ),
            before_sleep=tenacity.before_sleep_log(_log, logging.WARNING),
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, path, body)
        except _RetryableStatus as exc:
            raise self._gave_up(
                method,
                path,
                retrying,
                f"answered {exc.response.status_code}: {_said(exc.response)}",
                "the server is overloaded or failing; retry later, or raise retries=",
            ) from exc
        except httpx.HTTPError as exc:
            raise self._gave_up(
                method,
                path,
                retrying,
                f"failed: {type(exc).__name__}: {exc}",
                "is the server running and reachable? (vllm serve MODEL / python -m "
                "llama_cpp.server); timeout_s= and retries= set how long to wait",
            ) from exc

    def _gave_up(
        self, method: str, path: str, retrying: tenacity.Retrying, last: str, hint: str
    ) -> GenerationError:
        tries = retrying.statistics.get("attempt_number", 1)
        return GenerationError(
            f"{method} {self.base_url}{path} {last} (after {tries} attempt(s))", hint=hint
        )

    def _attempt(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        response = self._client.request(method, path, json=body)
        if response.status_code in _RETRY_STATUS:
            raise _RetryableStatus(response)
        return response

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        """Each row is its own request, sent concurrently: the server batches them.

        Concurrent episodes calling ``chat`` from their threads reach the server at once
        the same way (the HTTP client is shared and thread-safe). A row whose constraint
        this server cannot enforce fails before anything is sent for it.
        """
        if len(requests) == 1:
            return [self._one(requests[0])]
        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            return list(pool.map(self._one, requests))

    def close(self) -> None:
        self._client.close()
