"""``modelwire batch --provider-batch``: the providers' own batch APIs.

Same JSONL in and out as :func:`modelwire.batch.run_file`, but the requests
not yet in the output go to the provider in one batch (OpenAI Batch for the
``openai`` row, Anthropic Message Batches for ``anthropic``) at its batch
price, and the runner polls until the batch ends. The batch id is saved in
``OUTPUT.batch-state.json`` the moment the provider returns it, so a rerun
after an interrupt resumes polling that batch instead of submitting (and
paying for) a new one; the state file is removed once every result is
written. The wire formats live in the pure codec modules
:mod:`modelwire.providers.batch_openai` and ``batch_anthropic``; this module
only sends, polls and writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batch import (
    BatchRequest,
    BatchResult,
    ResultWriter,
    check_paths,
    output_lock,
    prepare_output,
    read_requests,
)
from .endpoint import tag
from .errors import ConfigurationError, ProviderError, UnsupportedFeatureError
from .health import PROBE_TIMEOUTS
from .pipeline import Call, Timeouts
from .providers import batch_anthropic, batch_openai
from .registry import ANTHROPIC, OPENAI, get_codec
from .response import Response
from .transports.base import WireRequest

if TYPE_CHECKING:
    from .client import AsyncClient

_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TIMEOUTS = Timeouts(connect=10.0, read=300.0, total=900.0)  # uploads and downloads
_MAX_REQUESTS = {"openai": 50_000, "anthropic": 100_000}  # per batch, as documented
_READ_ATTEMPTS = 8  # a poll or download failing retryably this often in a row gives up


def custom_id(request_id: str) -> str:
    """An id both batch APIs accept (Anthropic's is the stricter: [A-Za-z0-9_-]{1,64})."""
    if _CUSTOM_ID.match(request_id):
        return request_id
    return "mw-" + hashlib.sha256(request_id.encode()).hexdigest()[:32]


def state_path(output_path: str | os.PathLike[str]) -> Path:
    p = Path(output_path)
    return p.with_name(p.name + ".batch-state.json")


async def run_provider_batch(client: AsyncClient, input_path: str | os.PathLike[str],
                             output_path: str | os.PathLike[str], *,
                             model: str | None = None, poll_interval: float = 30.0,
                             retry_errors: bool = False,
                             log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    check_paths(input_path, output_path)
    with output_lock(output_path):
        return await _run(client, input_path, output_path, model, poll_interval,
                          retry_errors, log)


async def _run(client: AsyncClient, input_path: str | os.PathLike[str],
               output_path: str | os.PathLike[str], model: str | None, poll_interval: float,
               retry_errors: bool, log: Callable[[str], None]) -> dict[str, int]:
    requests = read_requests(input_path)
    out = prepare_output(output_path, retry_errors=retry_errors)
    todo = [r for r in requests if r.id not in out.done]
    counts = {"total": len(requests), "skipped": len(requests) - len(todo), "ok": 0,
              "errors": 0, "truncated_bytes": out.truncated}
    spath = state_path(output_path)
    if not todo:
        spath.unlink(missing_ok=True)
        return counts
    calls = {custom_id(r.id): _call(client, r, model) for r in todo}
    by_custom = {custom_id(r.id): r.id for r in todo}
    if len(by_custom) != len(todo):
        raise ConfigurationError("two request ids map to the same batch custom_id")
    first = next(iter(calls.values()))
    wire = _wire(first)
    if any(c.target.spec.name != first.target.spec.name for c in calls.values()):
        raise ConfigurationError("a provider batch goes to one provider: every request's "
                                 "model must name the same provider")
    models = sorted({c.target.model for c in calls.values()})
    if wire == "openai" and len(models) > 1:
        raise ConfigurationError(
            f"an OpenAI batch runs one model, these requests name {', '.join(models)}: "
            "split the input by model (or run without --provider-batch)")
    limit = _MAX_REQUESTS[wire]
    if len(calls) > limit:
        raise ConfigurationError(
            f"{len(calls)} requests to send; a {wire} batch takes at most {limit}: split the "
            "input into smaller files")
    codec = get_codec(first.target.spec)
    transport = client.transport_for(first.target.spec)

    async def send(request: WireRequest, timeouts: Timeouts = _TIMEOUTS) -> bytes:
        resp = await transport.send(request, timeouts)
        try:
            body = await resp.read()
        finally:
            await resp.aclose()
        if resp.status >= 400:
            raise tag(codec.classify_error(resp.status, resp.headers, body), first)
        return body

    async def patiently(request: WireRequest, timeouts: Timeouts = _TIMEOUTS) -> bytes:
        """Polls and downloads (never submissions) ride out a provider's bad moments."""
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                return await send(request, timeouts)
            except ProviderError as e:
                if not e.retryable or attempt == _READ_ATTEMPTS:
                    if spath.exists():  # else every rerun resumes into the same wall
                        e.message += (f" (the batch is recorded in {spath}; a rerun resumes "
                                      "it; if it is gone for good, delete that file to "
                                      "submit anew)")
                        e.args = (e.message,)
                    raise
                wait = e.retry_after if e.retry_after is not None else \
                    min(max(poll_interval, 1.0) * attempt, 300.0)
                log(f"{type(e).__name__} ({e.message[:120]}); trying again in {wait:.0f}s "
                    f"({attempt}/{_READ_ATTEMPTS - 1})")
                await asyncio.sleep(min(wait, 3600.0))
        raise AssertionError("unreachable")

    state = _load_state(spath)
    earlier: set[str] = set()  # custom_ids of this batch already in the output
    if state:
        earlier = set(state.get("custom_ids") or {}) - set(calls)
    if state and not set(calls) <= set(state.get("custom_ids") or {}):
        raise ConfigurationError(
            f"{spath} belongs to a batch of other requests; delete it to submit anew")
    if state and state.get("provider") not in (None, first.target.provider):
        raise ConfigurationError(
            f"{spath} is a batch submitted to {state['provider']!r}, not to "
            f"{first.target.provider!r}: rerun with that provider's model, or delete the "
            "file to submit anew")
    if state and isinstance(state.get("models"), list) and \
            not set(models) <= set(map(str, state["models"])):
        raise ConfigurationError(
            f"{spath} is a batch for {', '.join(map(str, state['models']))}, not "
            f"{', '.join(models)}: its answers come from the model it was submitted with; "
            "rerun with that model, or delete the file to submit anew")
    if state:
        batch_id = str(state["batch_id"])
        log(f"resuming provider batch {batch_id}")
    else:
        items = list(calls.items())
        if wire == "openai":
            file_id = batch_openai.decode_file_id(await send(batch_openai.encode_upload(
                first, codec, batch_openai.encode_input(items, codec))))
            created = await send(batch_openai.encode_create(first, codec, file_id))
            batch_id = batch_openai.decode_status(created).id
        else:
            created = await send(batch_anthropic.encode_create(items, codec))
            batch_id = batch_anthropic.decode_status(created).id
        _save_state(spath, {"provider": first.target.provider, "models": models,
                            "batch_id": batch_id, "custom_ids": by_custom})
        log(f"submitted provider batch {batch_id} ({len(items)} requests)")

    module: Any = batch_openai if wire == "openai" else batch_anthropic
    while True:
        status = module.decode_status(await patiently(
            module.encode_poll(first, codec, batch_id), PROBE_TIMEOUTS))
        if status.done:
            break
        log(f"batch {batch_id}: {status.status} {status.counts}")
        await asyncio.sleep(poll_interval)

    bodies = []  # every results file first: a refused download writes nothing
    for file_ref in status.output_file_ids:
        request = (batch_openai.encode_download(first, codec, file_ref) if wire == "openai"
                   else batch_anthropic.encode_results(first, codec, file_ref))
        bodies.append(await patiently(request))
    writer = ResultWriter(output_path)
    written: set[str] = set()
    problems: list[str] = []
    try:
        for body in bodies:
            for cid, outcome in module.decode_results(body, codec, calls, ignore=earlier,
                                                       problems=problems):
                if cid in written:
                    continue
                written.add(cid)
                _write(writer, by_custom[cid], outcome, calls[cid], counts)
        for problem in problems[:5]:
            log(f"skipped a bad results line: {problem}")
        if len(problems) > 5:
            log(f"... and {len(problems) - 5} more bad results lines")
        for cid in calls.keys() - written:  # nothing silently lost
            why = "; ".join(status.errors) or f"batch ended {status.status!r}"
            if problems:
                why += f"; {len(problems)} results line(s) could not be read"
            _write(writer, by_custom[cid], ProviderError(
                f"no result for this request in provider batch {batch_id} ({why})",
                code="missing_result"), calls[cid], counts)
    finally:
        writer.close()
    spath.unlink(missing_ok=True)
    return counts


def _write(writer: ResultWriter, rid: str, outcome: Response | ProviderError, call: Call,
           counts: dict[str, int]) -> None:
    if isinstance(outcome, Response):
        writer.write(BatchResult(rid, response=outcome).to_dict())
        counts["ok"] += 1
    else:
        writer.write(BatchResult(rid, error=tag(outcome, call)).to_dict())
        counts["errors"] += 1


def _call(client: AsyncClient, request: BatchRequest, model: str | None) -> Call:
    """The request's call; a mistake in it names the id (the whole batch is refused)."""
    try:
        return client.build_call(request.model or model, request.messages, **request.options)
    except ConfigurationError as e:
        e.args = (f"request {request.id!r}: {e}", *e.args[1:])
        raise
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"request {request.id!r}: bad options: {e}") from None


def _wire(call: Call) -> str:
    spec = call.target.spec
    if spec.codec == OPENAI and spec.transport == "http" and spec.auth == "bearer":
        return "openai"
    if spec.codec == ANTHROPIC:
        return "anthropic"
    raise UnsupportedFeatureError(
        f"--provider-batch works with the OpenAI Batch API and Anthropic Message Batches; "
        f"provider {spec.name!r} has no batch API here (run without --provider-batch)")


def _load_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        raise ConfigurationError(f"{path} is not valid JSON; delete it to submit anew") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("batch_id"), str) \
            or not isinstance(data.get("custom_ids"), dict):
        raise ConfigurationError(f"{path} is not a batch state file; delete it to submit anew")
    return data


def _save_state(path: Path, state: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
