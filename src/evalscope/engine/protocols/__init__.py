"""API protocol plugins (registry :data:`PROTOCOLS`)."""

from evalscope.engine.protocols.base import PROTOCOLS, Protocol, ProtocolError, StreamState, get_protocol

__all__ = ["PROTOCOLS", "Protocol", "ProtocolError", "StreamState", "get_protocol"]
