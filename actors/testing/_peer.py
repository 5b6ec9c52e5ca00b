"""A scripted peer: speaks to a board as a host would, one message at a time, and checks the replies.

``ScriptedPeer`` sits on any FrameTransport (an in-process transport whose other end a board
serves, a TCP stream to ``neurosplit chip serve``, a reliable or faulty wrapper). It has no task
of its own: it reads only when the script asks (``receive``, ``expect``), so a script can also
play a slow host that leaves the board's replies waiting. Everything sent and received is kept in
``sent`` and ``received`` (the exchange, in order), and ``expect`` raises ``ExchangeFailed``
carrying the first Divergence when a reply is not the one the script expected.
"""

from __future__ import annotations

from typing import Any, Callable

import trio

from ...protocol import (DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, Hello, Message, NeurosplitError,
                         RemoteProtocolError, decode, encode)
from .._transport import FrameTransport
from ._diff import Divergence, message_divergence, type_name

__all__ = ["ScriptedPeer", "ExchangeFailed", "StreamEnded"]


class ExchangeFailed(NeurosplitError):
    """A reply was not the one expected; ``divergence`` says where and how."""

    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence
        super().__init__(str(divergence))


class StreamEnded(ExchangeFailed):
    """The board closed the link (or the link broke) while a reply was awaited."""


class ScriptedPeer:
    """Speaks to a board as a host would (``role``), over ``transport``.

    name: for error texts. max_frame_bytes: largest frame accepted from the board. timeout_s:
    how long a receive waits when the call gives no timeout (seconds).
    ``sent``: every message (or raw frame, as bytes) sent, in order; ``received``: every message
    received, in order (``index`` of a Divergence is a position in ``received``).
    """

    def __init__(self, transport: FrameTransport, *, role: str = "host", name: str = "peer",
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, timeout_s: float = 5.0) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.transport = transport
        self.timeout_s = timeout_s
        self.role = role
        self.name = name
        self.max_frame_bytes = max_frame_bytes
        self.sent: list[Message | bytes] = []
        self.received: list[Message] = []
        self.closed = False  # the board ended the stream

    # -- sending ----------------------------------------------------------------------------
    async def send(self, msg: Message) -> None:
        """Encode ``msg`` and send it as one frame."""
        await self.transport.send_frame(encode(msg))
        self.sent.append(msg)

    async def send_frame(self, frame: bytes) -> None:
        """Send raw bytes as one frame (malformed frames, replays)."""
        await self.transport.send_frame(bytes(frame))
        self.sent.append(bytes(frame))

    async def hello(self, session: dict[str, int] | None = None, *, timeout_s: float | None = None) -> Hello:
        """Say hello as ``role`` (asking for ``session``) and expect the board's Hello back."""
        await self.send(Hello(protocol_version=PROTOCOL_VERSION, role=self.role, software="neurosplit-peer",
                              session=session or {}))
        return await self.expect(Hello, timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- receiving --------------------------------------------------------------------------
    async def receive(self, timeout_s: float | None = None) -> Message:
        """The next message from the board, decoded. Raises ExchangeFailed if nothing comes within
        ``timeout_s`` seconds (None: the peer's ``timeout_s``), if the frame does not decode, and
        StreamEnded if the link closed."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        index = len(self.received)
        frame = None
        with trio.move_on_after(timeout_s):
            try:
                frame = await self.transport.receive_frame()
            except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.closed = True
                raise StreamEnded(Divergence(index, None, None, None, None, None,
                                             note=f"{self.name}: the board closed the link")) from exc
            except RemoteProtocolError as exc:
                raise ExchangeFailed(Divergence(index, None, "frame", exc.field, None, str(exc),
                                                note=f"{self.name}: the board sent a frame that does not decode"))\
                    from exc
        if frame is None:
            raise ExchangeFailed(Divergence(index, None, None, None, None, None,
                                            note=f"{self.name}: nothing received within {timeout_s:g} s"))
        try:
            msg = decode(frame, self.max_frame_bytes)
        except RemoteProtocolError as exc:
            raise ExchangeFailed(Divergence(index, None, "frame", exc.field, None, str(exc),
                                            note=f"{self.name}: the board sent a frame that does not decode")) from exc
        self.received.append(msg)
        return msg

    async def expect(self, expected: Message | type | Callable[[Message], Any], *, timeout_s: float | None = None,
                     ignore: frozenset[str] = frozenset()) -> Message:
        """Receive the next message and check it; return it.

        expected: a message (the reply must equal it, except the fields in ``ignore``, see
        message_divergence), a message class (the reply must be one), or a callable given the
        reply that refuses it by returning False or a Divergence, or by raising AssertionError
        (anything else accepts it). Raises ExchangeFailed naming the first divergence.
        """
        want = expected if isinstance(expected, (Message, type)) else None
        index = len(self.received)
        try:
            msg = await self.receive(timeout_s)
        except ExchangeFailed as exc:
            d = exc.divergence
            if d.expected is None and want is not None:
                d = Divergence(d.index, type_name(want), d.received, d.field, d.expected_value, d.received_value,
                               d.note)
                raise type(exc)(d) from exc.__cause__
            raise
        if isinstance(expected, Message):
            found = message_divergence(expected, msg, ignore=ignore)
        elif isinstance(expected, type):
            found = None if isinstance(msg, expected) else Divergence(0, type_name(expected), msg.TAG, None,
                                                                        expected, msg)
        else:
            found = _check(expected, msg)
        if found is not None:
            raise ExchangeFailed(Divergence(index, found.expected, found.received, found.field, found.expected_value,
                                            found.received_value, found.note))
        return msg

    async def receive_until(self, done: Callable[[Message], bool], *, timeout_s: float | None = None,
                            max_messages: int = 100_000) -> list[Message]:
        """Messages received up to and including the first for which ``done`` is true (each one
        must come within ``timeout_s``)."""
        out = []
        while len(out) < max_messages:
            msg = await self.receive(timeout_s)
            out.append(msg)
            if done(msg):
                return out
        raise ExchangeFailed(Divergence(len(self.received), None, out[-1].TAG if out else None, None, None, None,
                                        note=f"{self.name}: {max_messages} messages without the one awaited"))

    async def expect_end(self, *, timeout_s: float | None = None) -> None:
        """The board must close the link without sending anything more."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            msg = await self.receive(timeout_s)
        except StreamEnded:
            return
        except ExchangeFailed as exc:
            raise ExchangeFailed(Divergence(exc.divergence.index, "<end of stream>", None, None, None, None,
                                            note=f"{self.name}: the link stayed open for {timeout_s:g} s")) from exc
        raise ExchangeFailed(Divergence(len(self.received) - 1, "<end of stream>", msg.TAG, None, None, msg))


def _check(predicate: Callable[[Message], Any], msg: Message) -> Divergence | None:
    name = getattr(predicate, "__name__", "check")
    try:
        verdict = predicate(msg)
    except AssertionError as exc:
        return Divergence(0, name, msg.TAG, None, None, msg, note=str(exc) or "assertion failed")
    if isinstance(verdict, Divergence):
        return verdict
    if verdict is False:
        return Divergence(0, name, msg.TAG, None, None, msg, note=f"{name} refused it")
    return None
