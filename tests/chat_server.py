"""A real HTTP server on 127.0.0.1 that speaks the chat-completions API with scripted replies.

Tests drive it through the real `openai` client, so retries, timeouts and parsing run as they
would against ChatGPT or vLLM. A reply function maps each request body to a `Reply` (or to the
assistant's text). Run it by hand to point `python run.py prompt=llm` at it:

    python tests/chat_server.py --port 8000
    python run.py prompt=llm prompt.base_url=http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before answering: longer than the client's timeout = a timeout
    raw: bytes | None = None  # a body to send as is (garbage)
    headers: dict[str, str] = field(default_factory=dict)


def label_of(body: dict) -> str:
    """The label named in the first user message of the paper's query (or of a test's own query)."""
    first = next(m["content"] for m in body["messages"] if m["role"] == "user")
    m = re.search(r"photo-realistic (.+?) images", first) or re.search(r"label: (.+)$", first)
    return m.group(1) if m else first


def numbered(label: str, n: int = 10) -> str:
    """What ChatGPT typically answers: a preamble, a numbered list, and a closing line."""
    lines = [f'{i}. "A photo-realistic {label} seen in setting number {i}."' for i in range(1, n + 1)]
    return "Sure! Here are some prompts:\n\n" + "\n".join(lines) + "\n\nI hope these help!"


def default_reply(body: dict) -> str:
    return numbered(label_of(body))


class ChatServer:
    """`with ChatServer(reply) as server:` serves on server.base_url; server.requests lists bodies."""

    def __init__(self, reply: Callable[[dict], Reply | str] = default_reply, port: int = 0):
        self.reply = reply
        self.requests: list[dict] = []
        self.auth: list[str | None] = []  # Authorization headers seen, to check the key is sent
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                with server._lock:
                    server.requests.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                reply = server.reply(body)
                reply = Reply(reply) if isinstance(reply, str) else reply
                time.sleep(reply.delay)
                if reply.raw is not None:
                    data = reply.raw
                elif reply.status != 200:
                    data = json.dumps({"error": {"message": reply.content or "scripted error", "type": "test"}})
                    data = data.encode()
                else:
                    data = json.dumps(completion(body.get("model", "test-model"), reply.content)).encode()
                self._send(reply.status, data, reply.headers)

            def _send(self, status, data, headers=None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        return Handler

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def completion(model: str, content: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    port = parser.parse_args().port
    with ChatServer(port=port) as server:
        print(f"serving {server.base_url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
