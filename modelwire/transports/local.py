"""LocalTransport: an in-process OpenAI-compatible server over llama.cpp.

The ``local`` row uses the OpenAI codec, so this transport answers
``local://chat/completions`` and ``local://completions`` with the JSON or SSE
bytes an OpenAI server would send. llama-cpp-python's ``create_chat_completion``
(chat template from the GGUF metadata) and ``create_completion`` already produce
that shape; we add the final usage chunk (``stream_options.include_usage``,
counted from the tokens the model sampled) and ``data: [DONE]``.

Queueing semantics (a llama.cpp context is not re-entrant):

* a model file is loaded once per process, on its own worker thread, and every
  call to it runs on that thread, one at a time, in the order the calls were
  sent (FIFO); different model files run in parallel;
* a stream holds its model until it ends or is closed, so close streams you
  abandon; a stream whose reader stops reading for ``timeouts.read`` seconds
  is treated as abandoned;
* time spent waiting in the queue counts against the call's total timeout; a
  call whose caller has gone (timeout, cancellation, closed stream or client)
  is skipped when its turn comes, or stopped between two tokens.
"""

from __future__ import annotations

import asyncio
import collections
import importlib
import importlib.util
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import local_models
from ..errors import (
    ConfigurationError,
    MissingDependencyError,
    ModelwireError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    UnsupportedFeatureError,
)
from ..pipeline import Timeouts
from .base import WireRequest
from .llama_setup import fresh_context, model_params, quiet_llama
from .local_request import Invalid, LocalRequest, dumps, error_body, parse, sse

_CREDITS = 16  # SSE chunks a stream may run ahead of its reader
_TOOLS_IN_TEMPLATE = re.compile(r"\btools\b")


class _Cancelled(Exception):
    """Raised inside generation when the caller has gone."""


@dataclass(eq=False)
class _Job:
    req: LocalRequest
    loop: asyncio.AbstractEventLoop
    idle: float | None  # seconds the worker waits for a stalled reader
    inbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    credits: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(_CREDITS))
    done: threading.Event = field(default_factory=threading.Event)
    sent: bool = False  # a chunk has gone to the reader
    prompt_tokens: int = 0
    sampled: int = 0  # tokens sampled, including a final end-of-generation token
    last_token: int = -1
    outcome: str = ""  # done | cancelled | skipped | failed, once the worker is through

    def put(self, tag: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, (tag, value))
        except RuntimeError:  # the caller's event loop is closed: nobody is listening
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()
        self.credits.release()  # wake a worker waiting for the reader


# --- loading ---------------------------------------------------------------

_LOAD_LOCK = threading.Lock()


class _Runner:
    """One loaded model and the worker thread that runs its jobs in FIFO order."""

    def __init__(self, key: tuple[Any, ...], path: str, options: Mapping[str, Any]) -> None:
        self.key, self.path, self.options = key, path, options
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.llm: Any = None
        self.template = ""
        self.error: ModelwireError | None = None
        self.closed = False
        self.lock = threading.Lock()
        self.load_seconds: float | None = None
        self.current: _Job | None = None
        self.history: collections.deque[_Job] = collections.deque(maxlen=64)
        self._is_eog: Any = None
        threading.Thread(target=self._serve, daemon=True,
                         name=f"modelwire-llama:{path.rsplit('/', 1)[-1]}").start()

    def submit(self, job: _Job) -> None:
        with self.lock:
            if not self.closed:
                self.jobs.put(job)
                return
        job.put("fail", self.error)

    def _serve(self) -> None:
        self._load()
        while True:
            try:
                job = self.jobs.get(timeout=5.0 if self.error else None)
            except queue.Empty:  # a failed model: drain, then let the thread end
                with self.lock:
                    if self.jobs.empty():
                        self.closed = True
                        return
                continue
            if self.error is not None:
                job.outcome = "failed"
                job.put("fail", self.error)
            elif job.cancelled.is_set():  # its caller gave up while it waited
                job.outcome = "skipped"
            else:
                self._run(job)
            self.history.append(job)
            job.done.set()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            import llama_cpp

            quiet_llama()  # before loading: logs to logging, fds 1 and 2 untouched
            with _LOAD_LOCK, model_params(self.options.get("extra_buffers")):
                llm: Any = llama_cpp.Llama(
                    self.path, n_ctx=self.options.get("n_ctx", 2048),
                    n_threads=self.options.get("n_threads"), verbose=False)
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            self._is_eog = lambda t: bool(llama_cpp.llama_vocab_is_eog(vocab, t))
        except Exception as e:  # any load failure is a setup problem
            self.error = ConfigurationError(
                f"could not load the GGUF model {self.path!r}: {type(e).__name__}: {e}")
            with _REGISTRY_LOCK:  # the next call may retry (the file may be fixed)
                if _RUNNERS.get(self.key) is self:
                    del _RUNNERS[self.key]
            return
        self.load_seconds = time.perf_counter() - started
        self.template = str(llm.metadata.get("tokenizer.chat_template") or "")
        original = llm.generate

        def generate(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            # Every completion goes through here: count tokens, stop when cancelled.
            job = self.current
            assert job is not None
            job.prompt_tokens, job.sampled = len(tokens), 0
            for token in original(tokens, *args, **kwargs):
                if job.cancelled.is_set():
                    raise _Cancelled
                job.sampled += 1
                job.last_token = token
                yield token

        llm.generate = generate
        self.llm = llm

    def _run(self, job: _Job) -> None:
        self.current = job
        fresh_context(self.llm)  # no prompt-cache reuse: same request, same logits
        try:
            if job.req.kind == "chat":
                result = self.llm.create_chat_completion(
                    stream=job.req.stream, **self._check_tools(job))
            else:
                result = self.llm.create_completion(stream=job.req.stream, **job.req.kwargs)
            if job.req.stream:
                self._pump(job, result)
            else:
                job.put("body", (200, dumps(result)))
            job.outcome = "done"
        except _Cancelled:
            job.outcome = "cancelled"
        except ModelwireError as e:
            job.outcome = "failed"
            job.put("fail", e)
        except Exception as e:  # llama.cpp's failures: HTTP-like errors
            job.outcome = "failed"
            if job.sent:
                job.put("fail", ServerError(f"the local model failed mid-stream: {e}"))
            else:
                status = 400 if isinstance(e, ValueError) else 500
                job.put("body", (status, error_body(str(e), status)))
        finally:
            self.current = None

    def _pump(self, job: _Job, chunks: Iterator[dict[str, Any]]) -> None:
        last: dict[str, Any] = {}
        try:
            for last in chunks:
                if not job.credits.acquire(timeout=job.idle) or job.cancelled.is_set():
                    raise _Cancelled
                job.put("chunk", sse(last))
                job.sent = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if job.req.include_usage:
            out = job.sampled - (1 if job.sampled and self._is_eog(job.last_token) else 0)
            job.put("chunk", sse({
                "id": last.get("id"), "object": last.get("object"),
                "created": last.get("created"), "model": job.req.name, "choices": [],
                "usage": {"prompt_tokens": job.prompt_tokens, "completion_tokens": out,
                          "total_tokens": job.prompt_tokens + out}}))
        job.put("chunk", b"data: [DONE]\n\n")
        job.put("end")

    def _check_tools(self, job: _Job) -> dict[str, Any]:
        kw = job.req.kwargs
        if not kw.get("tools"):
            return kw
        choice = kw.get("tool_choice")
        if choice == "none":
            return {k: v for k, v in kw.items() if k not in ("tools", "tool_choice")}
        if not _TOOLS_IN_TEMPLATE.search(self.template):
            raise UnsupportedFeatureError(
                f"the local model {job.req.name!r} cannot call tools: its chat template (GGUF "
                "metadata) has no tool support; call it without tools, or use a GGUF "
                "whose template handles tools")
        if not (isinstance(choice, dict) and isinstance(choice.get("function"), dict)):
            raise UnsupportedFeatureError(
                "local models call tools only when tool_choice names the tool: llama.cpp "
                "then constrains the output to that tool's JSON schema; with 'auto' or "
                "'required' the model's own tool-call markup would come back unparsed")
        return kw


_REGISTRY_LOCK = threading.Lock()
_RUNNERS: dict[tuple[Any, ...], _Runner] = {}


_FORKED_AWAY: list[_Runner] = []  # a parent's runners, kept (never freed) in a forked child


def _after_fork_in_child() -> None:
    """A forked child has the parent's loaded models but not their worker threads: a call
    would wait for its timeout. It loads its own; locks held at the fork are remade."""
    global _LOAD_LOCK, _REGISTRY_LOCK
    _LOAD_LOCK, _REGISTRY_LOCK = threading.Lock(), threading.Lock()
    _FORKED_AWAY.extend(_RUNNERS.values())  # not freed here: llama.cpp state is the parent's
    _RUNNERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _runner(path: str, options: Mapping[str, Any]) -> _Runner:
    key = (path, options.get("n_ctx"), options.get("n_threads"), options.get("extra_buffers"))
    with _REGISTRY_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            runner = _RUNNERS[key] = _Runner(key, path, options)
        return runner


# --- the transport ----------------------------------------------------------


class LocalResponse:
    __slots__ = ("_body", "_first", "_job", "_read", "headers", "status")

    def __init__(self, status: int, body: bytes = b"", job: _Job | None = None,
                 first: bytes = b"", read: float | None = None) -> None:
        self.status = status
        kind = "text/event-stream" if job is not None else "application/json"
        self.headers: Mapping[str, str] = {"content-type": kind}
        self._body, self._job, self._first, self._read = body, job, first, read

    async def read(self, max_bytes: int | None = None) -> bytes:
        body = b"".join([chunk async for chunk in self.iter_chunks()])
        if max_bytes is not None and len(body) > max_bytes:
            raise ResponseTooLargeError(
                f"the response body is larger than max_response_bytes={max_bytes} bytes",
                limit=max_bytes)
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        job = self._job
        if job is None:
            yield self._body
            return
        job.credits.release()
        yield self._first
        while True:
            try:
                tag, value = await asyncio.wait_for(job.inbox.get(), self._read)
            except asyncio.TimeoutError:
                job.cancel()
                raise RequestTimeoutError(
                    f"the local model sent nothing for {self._read:g}s; "
                    "raise timeout= if this is expected") from None
            if tag == "chunk":
                job.credits.release()
                yield value
            elif tag == "fail":
                raise value
            else:
                return

    async def aclose(self) -> None:
        if self._job is not None:
            self._job.cancel()


class LocalTransport:
    """``options`` are the ``local`` provider options: ``models`` (alias -> GGUF path),
    ``n_ctx`` (default 2048), ``n_threads``, ``extra_buffers`` (see :func:`model_params`)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = dict(options or {})
        models = self.options.get("models") or {}
        if not isinstance(models, Mapping):
            raise ConfigurationError("provider_options['local']['models'] must be a dict "
                                     "of name -> GGUF path")
        self._models: Mapping[str, str] = models
        self._paths: dict[str, str] = {}
        self._jobs: weakref.WeakSet[_Job] = weakref.WeakSet()  # to stop them on aclose

    async def send(self, request: WireRequest, timeouts: Timeouts) -> LocalResponse:
        if request.url.endswith("/embeddings"):  # all-MiniLM-L6-v2 in numpy, off the loop
            from ..local_embed import answer
            status, body = await asyncio.wait_for(asyncio.to_thread(answer, request.body),
                                                  timeouts.total)
            return LocalResponse(status, body)
        try:
            req = parse(request)
        except Invalid as e:
            return LocalResponse(e.status, error_body(e.message, e.status, e.param))
        if importlib.util.find_spec("llama_cpp") is None:  # microseconds; generation is ms
            raise MissingDependencyError("the local provider", "local", "llama-cpp-python")
        path = self._paths.get(req.name)
        if path is None:  # may assemble a file: off the event loop
            path = await asyncio.to_thread(local_models.resolve, req.name, self._models)
            self._paths[req.name] = path
        job = _Job(req, asyncio.get_running_loop(), timeouts.read)
        self._jobs.add(job)
        _runner(path, self.options).submit(job)
        try:
            tag, value = await asyncio.wait_for(job.inbox.get(), timeouts.total)
        except asyncio.TimeoutError:
            job.cancel()
            raise RequestTimeoutError(
                f"the local model did not answer within {timeouts.total:g}s (calls to one "
                "model run one at a time); raise timeout= if this is expected") from None
        except BaseException:
            job.cancel()
            raise
        if tag == "fail":
            raise value
        if tag == "body":
            return LocalResponse(value[0], value[1])
        return LocalResponse(200, job=job, first=value, read=timeouts.read)

    async def aclose(self) -> None:
        for job in list(self._jobs):
            if not job.done.is_set():
                job.cancel()
