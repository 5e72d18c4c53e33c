"""An OpenAI-compatible chat-completions server on the loopback address, for offline tests of the HTTP backend.

Import it from a test module as the other helpers are imported (pytest puts `tests/` on `sys.path`):

```python
from loopback_openai import LoopbackOpenAI, Reply

with LoopbackOpenAI(answer={"Hi.": "Hello!"}) as server:      # or answer=callable(body) -> str | Reply
    backend = OpenAIBackend(server.base_url, "judge-model")  # the real client, over HTTP on 127.0.0.1
    assert backend.generate([[{"role": "user", "content": "Hi."}]]) == ["Hello!"]
    assert server.num_requests == 1 and server.requests[0].prompt == "Hi."
```

- `answer`: `None` echoes (`"echo:<prompt>"`); a dict maps a prompt (the last message's content) to a completion text
  or a `Reply` (a prompt missing from it gets HTTP 400); a callable gets the `RecordedRequest` (`.body`, `.prompt`,
  `.headers`) and returns a text or a `Reply`.
- `failures`: replies served before the normal answers: a list (served one per request, to whichever requests come
  first), or a dict from prompt to a list (served to that prompt's first requests). `Reply.error(429,
  retry_after=0.1)`, `Reply.error(500)`, `Reply.malformed()`, `Reply.completion(text, delay=1.0)` (slow), ...
- `delay`: seconds before each answer (a number, or a callable of the `RecordedRequest`).
- `.base_url` (`http://127.0.0.1:PORT/v1`), `.requests` (a list of `RecordedRequest`: path, headers, body, prompt,
  status, times), `.num_requests` (requests received), `.num_completions` (completions fully sent with status 200).

huggingface_hub's client, which `OpenAIBackend` uses, refuses every request while the Hub's offline mode is on,
and `tests/conftest.py` turns it on. While the server runs, offline mode is lifted for this process
(`lift_hub_offline=True`, restored on exit); nothing but the loopback address is reachable in the tests anyway.
A subprocess talking to the server must get an environment without `HF_HUB_OFFLINE`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import huggingface_hub.constants


@dataclass
class Reply:
    """One scripted answer: HTTP status, body, headers and a delay before sending it.

    Args:
        status (`int`, *optional*, defaults to `200`): The HTTP status.
        body (`dict`, `str` or `bytes`, *optional*): The body; a dict is sent as JSON.
        headers (`dict`, *optional*): More headers (e.g. `{"Retry-After": "1"}`).
        delay (`float`, *optional*, defaults to `0.0`): Seconds to wait before answering (a slow server).
    """

    status: int = 200
    body: dict | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def completion(cls, text: str, delay: float = 0.0) -> Reply:
        """A chat completion answering `text`."""
        return cls(200, completion_body(text), delay=delay)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", retry_after: float | str | None = None) -> Reply:
        """An OpenAI-style error (`{"error": {"message": ...}}`), with `Retry-After` if given."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls(status, {"error": {"message": message, "code": status}}, headers)

    @classmethod
    def malformed(cls, raw: bytes | str = b"<html>not json</html>", status: int = 200) -> Reply:
        """A body that is not a chat completion (not JSON by default; pass e.g. `b'{"object": "x"}'`)."""
        return cls(status, raw if isinstance(raw, bytes) else raw.encode("utf-8"))


def completion_body(text: str, model: str = "loopback") -> dict[str, Any]:
    """A minimal OpenAI chat completion answering `text`."""
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def prompt_of(body: Mapping[str, Any] | None) -> str | None:
    """The prompt of a request body: the last message's content (`None` if there is none)."""
    try:
        return str(body["messages"][-1]["content"])  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return None


@dataclass
class RecordedRequest:
    """A request the server received.

    Attributes:
        path (`str`), headers (`dict[str, str]`), body (`dict` or `None` when not JSON), prompt (`str` or `None`).
        status (`int` or `None`): The status answered (`None` until answered).
        received (`float`): `time.monotonic()` when it arrived; answered (`float` or `None`): when the answer was sent.
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    prompt: str | None
    received: float
    status: int | None = None
    answered: float | None = None


Answer = Callable[[RecordedRequest], "str | Reply"] | Mapping[str, "str | Reply"] | None


class LoopbackOpenAI:
    """An OpenAI-compatible `POST /v1/chat/completions` server on 127.0.0.1 (a free port), in a background thread.

    Args:
        answer (`Callable[[RecordedRequest], str | Reply]`, `dict[str, str | Reply]` or `None`, *optional*): How to
            answer (see the module docstring); `None` echoes `"echo:<prompt>"`.
        failures (`list[Reply]` or `dict[str, list[Reply]]`, *optional*): Replies served before the normal answers.
        delay (`float` or `Callable[[RecordedRequest], float]`, *optional*, defaults to `0.0`): Seconds before each
            answer.
        lift_hub_offline (`bool`, *optional*, defaults to `True`): Lift huggingface_hub's offline mode while running.
    """

    def __init__(
        self,
        answer: Answer = None,
        failures: Sequence[Reply] | Mapping[str, Sequence[Reply]] | None = None,
        delay: float | Callable[[RecordedRequest], float] = 0.0,
        lift_hub_offline: bool = True,
    ):
        self.answer = answer
        self._shared_failures = list(failures) if isinstance(failures, Sequence) else []
        self._prompt_failures = {k: list(v) for k, v in failures.items()} if isinstance(failures, Mapping) else {}
        self.delay = delay
        self.lift_hub_offline = lift_hub_offline
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._completions = 0
        self._server: ThreadingHTTPServer | None = None
        self._offline_before: bool | None = None

    # ----------------------------------------------------------------------------------------------- life cycle
    def start(self) -> LoopbackOpenAI:
        """Start serving (the context manager calls this)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a slow answer still sleeping does not hold up the test
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        if self.lift_hub_offline:
            self._offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
            huggingface_hub.constants.HF_HUB_OFFLINE = False
        return self

    def stop(self) -> None:
        """Stop serving and restore the Hub's offline mode."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._offline_before is not None:
            huggingface_hub.constants.HF_HUB_OFFLINE = self._offline_before
            self._offline_before = None

    def __enter__(self) -> LoopbackOpenAI:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------ reading
    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`."""
        if self._server is None:
            raise RuntimeError("The server is not running; use it as a context manager.")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, in order of arrival (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def num_requests(self) -> int:
        """How many requests arrived."""
        with self._lock:
            return len(self._requests)

    @property
    def num_completions(self) -> int:
        """How many completions (status 200 with a chat completion) were fully sent."""
        with self._lock:
            return self._completions

    def reset(self) -> None:
        """Forget the recorded requests and the completion count (the scripted failures left are kept)."""
        with self._lock:
            self._requests.clear()
            self._completions = 0

    # ----------------------------------------------------------------------------------------------- answering
    def _reply_for(self, record: RecordedRequest) -> Reply:
        body, prompt = record.body, record.prompt
        with self._lock:
            queue = self._prompt_failures.get(prompt or "")
            if queue:
                return queue.pop(0)
            if self._shared_failures:
                return self._shared_failures.pop(0)
        if body is None:
            return Reply.error(400, "the body is not JSON")
        if self.answer is None:
            result: str | Reply = f"echo:{prompt}"
        elif isinstance(self.answer, Mapping):
            if prompt not in self.answer:
                return Reply.error(400, f"no scripted answer for {prompt!r}")
            result = self.answer[prompt]
        else:
            result = self.answer(record)
        if isinstance(result, Reply):
            return result
        return Reply(200, completion_body(str(result), model=str(body.get("model"))))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        prompt = prompt_of(body)
        record = RecordedRequest(handler.path, dict(handler.headers), body, prompt, time.monotonic())
        with self._lock:
            self._requests.append(record)
        reply = self._reply_for(record)
        delay = reply.delay + (self.delay(record) if callable(self.delay) else self.delay)
        if delay:
            time.sleep(delay)
        payload = reply.body
        if isinstance(payload, dict):
            data = json.dumps(payload).encode("utf-8")
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        else:
            data = payload or b""
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:  # the client went away (timed out, killed)
            return
        with self._lock:
            record.status = reply.status
            record.answered = time.monotonic()
            if reply.status == 200 and isinstance(payload, dict) and "choices" in payload:
                self._completions += 1
