"""Test-wide guards: no test may reach beyond the loopback interface."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest


class NetworkAccessDenied(RuntimeError):
    pass


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be a lookup


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkAccessDenied(
                f"test tried to connect to {address!r}: tests may only use 127.0.0.1/::1"
            )
        return real(self, address)
    return connect


_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # A DNS lookup is traffic too: only loopback names and literals resolve.
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_loopback((name, 0)):
        raise NetworkAccessDenied(
            f"test tried to resolve {name!r}: tests may only use 127.0.0.1/::1"
        )
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded(_real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded(_real_connect_ex)  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real keys must never leak into a test run."""
    import os
    for var in list(os.environ):
        if var.endswith(("_API_KEY", "_BASE_URL")) or var in (
            "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"
        ):
            monkeypatch.delenv(var, raising=False)
    # nor their user config file (aliases, default model): point it at nothing
    monkeypatch.setenv("MODELWIRE_CONFIG", os.devnull + ".modelwire-tests-no-config.toml")
