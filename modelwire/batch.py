"""Batch jobs: many requests through one client, bounded, resumable.

``await client.batch(requests, concurrency=16, on_result=...)`` runs each
request through the client's whole middleware chain (so the rate limiter,
retries, breaker and fallbacks apply to every one) with at most
``concurrency`` in flight, and returns one :class:`BatchResult` per request,
in input order. A failed request is a result too: its typed error, never an
exception that sinks the other requests.

A request is a dict (one JSONL line of ``modelwire batch``)::

    {"id": "q1", "messages": [{"role": "user", "content": "hi"}]}
    {"id": "q2", "prompt": "hi", "model": "openai/gpt-4o-mini",
     "options": {"max_tokens": 50, "temperature": 0}}

``prompt`` is shorthand for one user message; ``model`` overrides the batch's
model; ``options`` are keyword arguments of ``complete()``.

Files (:func:`run_file`): the output is JSONL, one line per finished request,
``{"id": ..., "response": Response.to_dict()}`` or ``{"id": ..., "error":
{"type", "message", "status", "retryable"}}``, each written whole and flushed
the moment it completes. Rerunning with the same output skips ids already in
it; a half-written last line (the process was killed mid-write) is cut off
and its request done again.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigurationError, InvalidMessageError, ModelwireError, ProviderError
from .response import Response

if TYPE_CHECKING:
    from .client import AsyncClient

_KEYS = frozenset({"id", "messages", "prompt", "model", "options", "custom_id"})


@dataclass(slots=True)
class BatchRequest:
    id: str
    messages: Any  # a list of messages or one user string
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str = "request") -> BatchRequest:
        """A request dict to a BatchRequest, or an InvalidMessageError saying what is wrong."""
        if isinstance(data, BatchRequest):
            return data
        if not isinstance(data, Mapping):
            raise InvalidMessageError(f"{where}: expected a JSON object, got "
                                      f"{type(data).__name__}")
        rid = data.get("id", data.get("custom_id"))
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or rid == "":
            raise InvalidMessageError(f"{where}: needs an \"id\" (a string or an integer)")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InvalidMessageError(
                f"{where} (id {rid!r}): unknown field(s) {', '.join(unknown)}; a request has "
                "id, messages or prompt, and optionally model and options")
        has_messages, has_prompt = data.get("messages") is not None, data.get("prompt") is not None
        if has_messages == has_prompt:
            raise InvalidMessageError(
                f"{where} (id {rid!r}): give exactly one of \"messages\" or \"prompt\"")
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise InvalidMessageError(f"{where} (id {rid!r}): \"options\" must be an object")
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidMessageError(f"{where} (id {rid!r}): \"model\" must be a string")
        messages = data["messages"] if has_messages else str(data["prompt"])
        return cls(str(rid), messages, model, dict(options))


@dataclass(slots=True)
class BatchResult:
    id: str
    response: Response | None = None
    error: ModelwireError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        if self.response is not None:
            return {"id": self.id, "response": self.response.to_dict()}
        return {"id": self.id, "error": error_dict(self.error)}


def error_dict(err: BaseException | None) -> dict[str, Any]:
    """A typed error as JSON: type, message, status, retryable."""
    if isinstance(err, ProviderError):
        return {"type": type(err).__name__, "message": err.message, "status": err.status,
                "retryable": err.retryable}
    return {"type": type(err).__name__, "message": str(err), "status": None,
            "retryable": False}


OnResult = Callable[[BatchResult], Union[Awaitable[None], None]]
RequestLike = Union[BatchRequest, Mapping[str, Any]]


async def run_batch(client: AsyncClient, requests: Iterable[RequestLike], *,
                    model: str | None = None, concurrency: int = 16,
                    on_result: OnResult | None = None) -> list[BatchResult]:
    """See :meth:`AsyncClient.batch`. Invalid requests fail before any traffic."""
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive int, got {concurrency!r}")
    parsed = [BatchRequest.parse(r, f"request {i}") for i, r in enumerate(requests)]
    seen: set[str] = set()
    for r in parsed:
        if r.id in seen:
            raise InvalidMessageError(f"request id {r.id!r} appears twice; ids must be unique")
        seen.add(r.id)
    results: list[BatchResult | None] = [None] * len(parsed)

    async def one(i: int, request: BatchRequest) -> None:
        result = await _run_one(client, request, model)
        results[i] = result
        if on_result is not None:
            maybe = on_result(result)
            if inspect.isawaitable(maybe):
                await maybe

    await _pool(concurrency, (one(i, r) for i, r in enumerate(parsed)))
    return [r for r in results if r is not None]


async def _run_one(client: AsyncClient, request: BatchRequest,
                   model: str | None) -> BatchResult:
    try:
        response = await client.complete(request.model or model, request.messages,
                                         **request.options)
    except ModelwireError as e:  # provider failures and bad requests alike: a result
        return BatchResult(request.id, error=e)
    except TypeError as e:  # an option complete() does not take
        return BatchResult(request.id, error=ConfigurationError(f"bad options: {e}"))
    return BatchResult(request.id, response=response)


async def _pool(size: int, jobs: Iterable[Awaitable[None]]) -> None:
    """Run awaitables with at most ``size`` in flight; the first crash cancels the rest."""
    it = iter(jobs)  # lazily: a million requests never become a million tasks

    async def worker() -> None:
        for job in it:  # next() never awaits, so workers never take the same job
            await job

    workers = [asyncio.ensure_future(worker()) for _ in range(size)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()


# --- files -------------------------------------------------------------------


def read_requests(path: str | os.PathLike[str]) -> list[BatchRequest]:
    """The JSONL input: one request a line (blank lines ignored), ids unique."""
    out: list[BatchRequest] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise InvalidMessageError(f"{path}:{n}: not valid JSON ({e})") from None
            request = BatchRequest.parse(data, f"{path}:{n}")
            if request.id in seen:
                raise InvalidMessageError(f"{path}:{n}: id {request.id!r} appears twice")
            seen.add(request.id)
            out.append(request)
    return out


@dataclass(slots=True)
class OutputState:
    done: dict[str, bool]  # id -> ok, for every complete line already in the output
    truncated: int = 0  # bytes of a half-written last line that were cut off


def prepare_output(path: str | os.PathLike[str], *, retry_errors: bool = False) -> OutputState:
    """Read what an earlier run finished; cut a half-written last line.

    ``retry_errors``: drop error lines (rewritten atomically) so they run again.
    """
    p = Path(path)
    if not p.exists():
        return OutputState({})
    data = p.read_bytes()
    cut = len(data) - (data.rfind(b"\n") + 1)
    if cut:
        with open(p, "r+b") as f:
            f.truncate(len(data) - cut)
        data = data[:len(data) - cut]
    done: dict[str, bool] = {}
    kept: list[bytes] = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rid, ok = str(row["id"]), "response" in row
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ConfigurationError(
                f"{path}:{n} is not a batch result line; is this the right output file? "
                "(refusing to append to it)") from None
        if retry_errors and not ok:
            continue
        done[rid] = ok
        kept.append(line)
    if retry_errors and len(kept) != len(data.splitlines()):
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
        os.replace(tmp, p)
    return OutputState(done, cut)


class ResultWriter:
    """Appends one result line per call: one write, flushed (and fsynced on close)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, row: Mapping[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


async def run_file(client: AsyncClient, input_path: str | os.PathLike[str],
                   output_path: str | os.PathLike[str], *, model: str | None = None,
                   concurrency: int = 16, retry_errors: bool = False,
                   on_result: OnResult | None = None,
                   on_start: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """JSONL in, JSONL out, resumable. Returns counts: total, skipped, ok, errors."""
    requests = read_requests(input_path)
    state = prepare_output(output_path, retry_errors=retry_errors)
    todo = [r for r in requests if r.id not in state.done]
    counts = {"total": len(requests), "skipped": len(requests) - len(todo), "ok": 0,
              "errors": 0, "truncated_bytes": state.truncated}
    if on_start is not None:
        on_start(len(requests), counts["skipped"])
    writer = ResultWriter(output_path)

    async def record(result: BatchResult) -> None:
        writer.write(result.to_dict())
        counts["ok" if result.ok else "errors"] += 1
        if on_result is not None:
            maybe = on_result(result)
            if inspect.isawaitable(maybe):
                await maybe

    try:
        await run_batch(client, todo, model=model, concurrency=concurrency, on_result=record)
    finally:
        writer.close()
    return counts
