"""Closing a sync Client under a call, and using it after close: typed, never a hang.

Regression: ``Client.close()`` from another thread stopped the loop with the
call's task still pending, so the calling thread waited forever (the compat
ClientPool closes an evicted client this way); a call on a closed client
raised a raw RuntimeError and leaked an un-awaited coroutine.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest

import modelwire
from modelwire.testing import Fault, FaultServer


def test_close_from_another_thread_ends_the_call_in_flight() -> None:
    with FaultServer.run_in_thread() as server:
        server.script(Fault.slow_first_byte(30))
        client = modelwire.Client(api_keys={"openai": "sk-test"}, max_retries=0,
                                  base_urls={"openai": server.url_for("openai")})
        outcome: list[BaseException | str] = []

        def call() -> None:
            try:
                outcome.append(client.complete("openai/gpt-4o", "hi").text)
            except BaseException as e:
                outcome.append(e)

        worker = threading.Thread(target=call)
        worker.start()
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.requests, "the call never reached the server"
        client.close()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the call hung after close()"
    error = outcome[0]
    assert isinstance(error, modelwire.ConfigurationError), error
    assert "closed while this call was in flight" in str(error)


def test_a_call_on_a_closed_client_is_a_typed_error() -> None:
    client = modelwire.Client()
    client.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        with pytest.raises(modelwire.ConfigurationError, match="Client is closed"):
            client.complete("mock/m", "hi")
        with pytest.raises(modelwire.ConfigurationError, match="Client is closed"):
            list(client.stream("mock/m", "hi"))
    client.close()  # still idempotent
