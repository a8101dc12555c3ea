"""Codecs: one per wire protocol. Pure functions of bytes; no I/O."""
