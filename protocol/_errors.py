"""The exception hierarchy: every error says whose code to fix."""

from __future__ import annotations

__all__ = [
    "NeurosplitError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ChipLimitError",
]


class NeurosplitError(Exception):
    """Base class of every error neurosplit raises on purpose."""


class ProtocolError(NeurosplitError):
    """A message or frame that breaks the protocol.

    ``message`` names the message type (or ``frame`` for framing problems), ``field`` the
    field path inside it (``t_ticks[17]``), ``problem`` what is wrong, in plain words.
    """

    def __init__(self, message: str, field: str, problem: str) -> None:
        self.message = message
        self.field = field
        self.problem = problem
        super().__init__(f"{message}.{field}: {problem}")


class LocalProtocolError(ProtocolError):
    """We built an invalid message: a bug on this side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent an invalid frame or message, or speaks another protocol version."""


class ChipLimitError(NeurosplitError):
    """A valid request beyond what the emulated chip can hold: 6-bit weights, 512 neurons, 256 rows."""
