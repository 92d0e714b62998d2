"""Local servers the tests start: a free port, llama-cpp-python's OpenAI server, and a
scripted OpenAI-compatible server that fails on purpose (for the clients' retries)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from slmkit.models import embedded_gguf


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(log_path: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the embedded model; its base URL.

    The server's output goes to ``log_path`` (a file, not a pipe: llama.cpp logs a lot and
    would block on a full pipe) and is shown when the server dies before answering.
    """
    port = free_port()
    log = log_path.open("w+")
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf()),
           "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--n_threads", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited: {log.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up in 180 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class FlakyServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 whose first requests fail.

    The first ``failures`` chat requests get ``status`` (with ``headers``, after
    stalling ``stall_s`` seconds); later ones a fixed completion, ``"hello"``.
    ``failures=None`` never recovers. ``hits`` holds the arrival time
    (``time.monotonic()``) of every chat request, ``bodies`` its JSON body.
    """

    def __init__(
        self,
        failures: int | None,
        *,
        status: int = 503,
        headers: dict[str, str] | None = None,
        stall_s: float = 0.0,
    ) -> None:
        self.failures, self.status, self.headers, self.stall_s = failures, status, headers, stall_s
        self.hits: list[float] = []
        self.bodies: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def answer(self, body: dict[str, object]) -> tuple[int, dict[str, str], object, float]:
        """Status, headers, body (JSON value or bytes) and stall of the answer to a chat request."""
        with self._lock:
            self.hits.append(time.monotonic())
            self.bodies.append(body)
            n = len(self.hits)
        if self.failures is None or n <= self.failures:
            body: dict[str, object] = {"error": {"message": "overloaded", "code": self.status}}
            return self.status, dict(self.headers or {}), body, self.stall_s
        ok = {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }  # fmt: skip
        return 200, {}, ok, 0.0


class ScriptedServer(FlakyServer):
    """An OpenAI-compatible server that answers every chat request the same way.

    ``body`` is sent as given: raw ``bytes`` (an HTML page, broken JSON) or a JSON value,
    with ``status`` and ``content_type``; for the client's handling of odd answers.
    """

    def __init__(self, status: int, body: object, content_type: str = "application/json") -> None:
        super().__init__(None, status=status, headers={"content-type": content_type})
        self.body = body

    def answer(self, body: dict[str, object]) -> tuple[int, dict[str, str], object, float]:
        super().answer(body)
        return self.status, dict(self.headers or {}), self.body, 0.0


@contextmanager
def flaky_server(server: FlakyServer) -> Iterator[str]:
    """Serve ``server`` on a free port; yields the base URL (``.../v1``).

    A JSON body is encoded; ``bytes`` go out as they are, under the server's content-type.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, headers, body, stall = server.answer(json.loads(sent or b"{}"))
            time.sleep(stall)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                for key, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timed out) while we stalled
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
