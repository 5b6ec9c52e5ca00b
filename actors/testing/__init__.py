"""The protocol test kit: what a user needs to write protocol tests against a board."""

from ._diff import Divergence, first_divergence, message_divergence
from ._peer import ExchangeFailed, ScriptedPeer, StreamEnded

__all__ = ["Divergence", "first_divergence", "message_divergence", "ExchangeFailed", "ScriptedPeer", "StreamEnded"]
