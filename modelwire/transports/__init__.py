"""The one seam to the outside world: HTTP, the in-process local model, the mock."""

from .base import Transport, WireRequest, WireResponse

__all__ = ["Transport", "WireRequest", "WireResponse"]
