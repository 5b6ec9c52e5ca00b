"""The neurosplit wire protocol: message catalogue, msgpack codec, framing, validation. No I/O.

Import what you need from here; the private modules may move.
"""

from ._base import MAX_LABEL, MAX_MAP_LEN, MAX_STR_BYTES, FrozenDict, Message, message_classes
from ._codec import (
    DEFAULT_MAX_FRAME_BYTES,
    FRAME_HEADER_BYTES,
    UNCHECKED,
    FrameParts,
    decode,
    decode_body,
    encode,
    encode_body,
    encode_parts,
)
from ._errors import ChipLimitError, LocalProtocolError, NeurosplitError, ProtocolError, RemoteProtocolError
from ._messages import *  # noqa: F401,F403  (the catalogue; __all__ lists it)
from ._messages import __all__ as _message_names
from ._stream import FrameReader
from ._time import ACCELERATION, TICK_NS, TICKS_PER_US, bio_ms_to_us, ticks_to_us, us_to_bio_ms, us_to_ticks

__all__ = [
    "MAX_LABEL", "MAX_MAP_LEN", "MAX_STR_BYTES", "FrozenDict", "Message", "message_classes",
    "DEFAULT_MAX_FRAME_BYTES", "FRAME_HEADER_BYTES", "UNCHECKED", "FrameParts", "FrameReader",
    "decode", "decode_body", "encode", "encode_body", "encode_parts",
    "ChipLimitError", "LocalProtocolError", "NeurosplitError", "ProtocolError", "RemoteProtocolError",
    "ACCELERATION", "TICK_NS", "TICKS_PER_US", "bio_ms_to_us", "ticks_to_us", "us_to_bio_ms", "us_to_ticks",
    *_message_names,
]
