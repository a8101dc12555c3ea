"""The transport protocol every way of reaching a model implements.

A transport moves bytes; it knows nothing of providers. It raises only
:class:`~modelwire.errors.RequestTimeoutError` and
:class:`~modelwire.errors.ProviderConnectionError` (the endpoint fills in
provider and model); HTTP error statuses come back as ordinary responses for
the codec to classify.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..pipeline import Timeouts


@dataclass(slots=True)
class WireRequest:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)  # may hold the API key: never printed
    body: bytes | None = None
    stream: bool = False


class WireResponse(Protocol):
    status: int
    headers: Mapping[str, str]  # lower-case names

    async def read(self, max_bytes: int | None = None) -> bytes:
        """The whole body; past ``max_bytes`` close and raise ResponseTooLargeError."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def send(self, request: WireRequest, timeouts: Timeouts) -> WireResponse:
        """Send and return once the status and headers are in."""
        ...

    async def aclose(self) -> None: ...
