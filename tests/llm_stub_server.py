"""A loopback OpenAI-compatible `/chat/completions` server that plays scripted replies.

Lets the LLM tests exercise the real `openai` client over real HTTP without a network, in each
answer format real servers use: DeepSeek V4 (`reasoning_content` + JSON content), open-weight R1
(`<think>` inside content), Ollama (`reasoning` field), keep-alive comment lines while busy,
HTTP errors such as 400 "model not found", and hostile bytes (invalid UTF-8, non-JSON data).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Reply", "StubLLMServer"]


@dataclass
class Reply:
    """One scripted answer to one request."""

    content: str | None = ""
    reasoning: str | None = None
    status: int = 200
    error: str = "error"  # body message for status >= 400
    delay: float = 0.0  # seconds to wait before answering
    chunks: list[str] = field(default_factory=list)  # content split for streaming
    reasoning_field: str = "reasoning_content"  # Ollama and OpenRouter say "reasoning"
    keepalives: int = 0  # ": keep-alive" lines sent before the answer, one per keepalive_s
    keepalive_s: float = 0.1
    raw: bytes | None = None  # a stream body sent as is (bytes no real server should send)


class StubLLMServer:
    """Serve `replies` in order (HTTP 500 when they run out); record every request body."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [])
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0  # answers the client hung up on (a cancelled request)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StubLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self.replies.pop(0) if self.replies else Reply(status=500, error="no reply")


def _handler_for(stub: StubLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            reply = stub.next_reply(body)
            time.sleep(reply.delay)
            try:
                if reply.status >= 400:
                    self._json(reply.status, {"error": {"message": reply.error, "type": "x"}})
                elif body.get("stream"):
                    self._sse(reply, body.get("model", "stub"))
                else:
                    self._json(200, _completion(reply, body.get("model", "stub")))
            except (BrokenPipeError, ConnectionResetError):
                with stub._lock:  # the client gave up (deadline tests)
                    stub.disconnects += 1

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, reply: Reply, model: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for _ in range(reply.keepalives):  # what DeepSeek sends while the model is busy
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                time.sleep(reply.keepalive_s)
            if reply.raw is not None:
                self.wfile.write(reply.raw)
                self.wfile.flush()
                return
            field = reply.reasoning_field
            deltas = [{field: part} for part in (reply.reasoning or "").split("|") if part]
            deltas += [{"content": part} for part in reply.chunks or [reply.content or ""]]
            for delta in deltas:
                chunk = {
                    "id": "stub",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning is not None:
        message["reasoning_content"] = reply.reasoning
    return {
        "id": "stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
