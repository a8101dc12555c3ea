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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigurationError, InvalidMessageError, ModelwireError, ProviderError
from .response import Response

if TYPE_CHECKING:
    from .client import AsyncClient

_KEYS = frozenset({"id", "messages", "prompt", "model", "options", "custom_id"})
# complete() arguments a request sets with its own fields (or that batch decides)
_RESERVED_OPTIONS = frozenset({"model", "messages", "prompt", "stream"})


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
        if "id" in data and "custom_id" in data:
            raise InvalidMessageError(f"{where} (id {rid!r}): give \"id\" or \"custom_id\", "
                                      "not both")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InvalidMessageError(
                f"{where} (id {rid!r}): unknown field(s) {', '.join(unknown)}; a request has "
                "id, messages or prompt, and optionally model and options")
        has_messages, has_prompt = data.get("messages") is not None, data.get("prompt") is not None
        if has_messages == has_prompt:
            raise InvalidMessageError(
                f"{where} (id {rid!r}): give exactly one of \"messages\" or \"prompt\"")
        options = data.get("options")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise InvalidMessageError(f"{where} (id {rid!r}): \"options\" must be an object")
        reserved = sorted(_RESERVED_OPTIONS & set(options))
        if reserved:
            raise InvalidMessageError(
                f"{where} (id {rid!r}): \"options\" cannot set {', '.join(reserved)}; "
                "use the request's own \"model\", \"messages\" or \"prompt\" "
                "(a batch never streams)")
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise InvalidMessageError(f"{where} (id {rid!r}): \"model\" must be a string")
        if has_prompt and not isinstance(data["prompt"], str):
            raise InvalidMessageError(f"{where} (id {rid!r}): \"prompt\" must be a string, got "
                                      f"{type(data['prompt']).__name__}")
        messages = data["messages"] if has_messages else data["prompt"]
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
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
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

    # never more workers than requests: concurrency=10**9 is not a billion tasks
    await _pool(min(concurrency, max(len(parsed), 1)),
                (one(i, r) for i, r in enumerate(parsed)))
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
    except ValueError as e:  # an option's value, or text that cannot be encoded
        return BatchResult(request.id, error=ConfigurationError(
            f"the request cannot be sent: {e}"))
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
    """The JSONL input: one request a line (blank lines ignored), ids unique.

    UTF-8, with or without a byte-order mark; CRLF line ends are fine."""
    out: list[BatchRequest] = []
    seen: set[str] = set()
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise InvalidMessageError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                                  "save it as UTF-8 JSONL") from None
    except OSError as e:
        raise ConfigurationError(f"cannot read the input {path}: {e.strerror or e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as e:
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


def check_paths(input_path: str | os.PathLike[str],
                output_path: str | os.PathLike[str]) -> None:
    """Refuse, before any traffic, an output that is the input or cannot be written."""
    out = Path(output_path)
    if out.is_dir():
        raise ConfigurationError(f"the output {out} is a directory; name a file in it")
    if out.exists() and not out.is_file():  # /dev/stdout, a FIFO: no resuming from those
        raise ConfigurationError(f"the output {out} is not a regular file; results are "
                                 "appended to, and resumed from, a file")
    if not out.parent.is_dir():
        raise ConfigurationError(f"the output's directory {out.parent} does not exist; "
                                 "create it first")
    if out.exists() and Path(input_path).exists() and os.path.samefile(input_path, out):
        raise ConfigurationError(f"the output {out} is the input file; results go to a "
                                 "file of their own")


@contextmanager
def output_lock(output_path: str | os.PathLike[str]) -> Iterator[None]:
    """One run per output at a time (``OUTPUT.lock``, an advisory lock the OS drops
    if the process dies): a second run would write every id twice, or submit and
    pay for a second provider batch."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = Path(output_path)
    lock = lock.with_name(lock.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"another run is writing {output_path} (it holds {lock}); wait for it to "
                "finish or stop it") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def prepare_output(path: str | os.PathLike[str], *, retry_errors: bool = False) -> OutputState:
    """Read what an earlier run finished; cut a half-written last line.

    ``retry_errors``: drop error lines (rewritten atomically) so they run again.
    """
    p = Path(path)
    if not p.exists():
        return OutputState({})
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"cannot read the output {p}: {e.strerror or e}") from None
    cut = len(data) - (data.rfind(b"\n") + 1)
    if cut and _is_result(data[-cut:]):  # whole but for its newline (an editor's save, or
        with open(p, "ab") as f:         # a write cut just before it): kept, not redone
            f.write(b"\n")
        data, cut = data + b"\n", 0
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
            if not ok and "error" not in row:
                raise KeyError("response")  # a request line, say: not a result
        except (ValueError, KeyError, TypeError):
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


def _is_result(line: bytes) -> bool:
    try:
        row = json.loads(line)
    except ValueError:
        return False
    return isinstance(row, dict) and isinstance(row.get("id"), (str, int)) and (
        isinstance(row.get("response"), dict) or isinstance(row.get("error"), dict))


class ResultWriter:
    """Appends one result line per call: one write, flushed (and fsynced on close)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, row: Mapping[str, Any]) -> None:
        # a lone surrogate (JSON allows "\ud800") is written back as that same escape
        line = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
            "utf-8", "backslashreplace")
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
    check_paths(input_path, output_path)
    with output_lock(output_path):
        return await _run_file(client, input_path, output_path, model, concurrency,
                               retry_errors, on_result, on_start)


async def _run_file(client: AsyncClient, input_path: str | os.PathLike[str],
                    output_path: str | os.PathLike[str], model: str | None, concurrency: int,
                    retry_errors: bool, on_result: OnResult | None,
                    on_start: Callable[[int, int], None] | None) -> dict[str, int]:
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
