"""A local OpenAI-compatible chat-completions server for tests (no network, no key, scripted answers).

::

    from soorma.testing.llm import FakeLLMServer

    with FakeLLMServer(['{"action": "complete", "result": {"ok": true}}']) as llm:
        os.environ["SOORMA_LLM_BASE_URL"] = llm.base_url        # http://127.0.0.1:<port>/v1
        ...                                                       # code under test calls the LLM
        assert llm.requests[0]["body"]["messages"]

``answers``: strings (the assistant message content) served in order (the last one repeats), or a callable
``answer(body: dict) -> str | dict`` (a dict is sent as the whole response body). Every request is recorded in
``requests`` as ``{"path", "headers", "body"}``. Serves ``POST /v1/chat/completions`` and ``POST /chat/completions``;
anything else is 404. Runs in a thread (``http.server``); standard library only.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

Answer = str | Callable[[dict[str, Any]], "str | dict[str, Any]"]


class FakeLLMServer:
    def __init__(self, answers: Sequence[str] | Callable[[dict[str, Any]], Any] = ("{}",), *,
                 host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        self._answers = answers
        self._served = 0
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if server.status >= 400:
                    self._send(server.status, {"error": {"message": "scripted failure"}})
                    return
                self._send(200, server._response(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    def _response(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if callable(self._answers):
                answer = self._answers(body)
            else:
                answers = list(self._answers)
                answer = answers[min(self._served, len(answers) - 1)]
            self._served += 1
        if isinstance(answer, dict):
            return answer
        return {
            "id": f"chatcmpl-fake-{self._served}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` (what ``SOORMA_LLM_BASE_URL`` takes)."""
        host = self._httpd.server_address[0]
        # typeshed allows a bytes host (AF_UNIX); an AF_INET server's is always str
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{self.port}/v1"

    def start(self) -> "FakeLLMServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def prompts(self) -> list[str]:
        """Every message content sent, all requests, in order (for assertions)."""
        return [m.get("content", "") for r in self.requests for m in r["body"].get("messages", [])]


if __name__ == "__main__":  # a fake to point a local stack at: python -m soorma.testing.llm PORT ANSWER...
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    fake = FakeLLMServer(sys.argv[2:] or ['{"action": "complete", "result": {}}'], port=port).start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
