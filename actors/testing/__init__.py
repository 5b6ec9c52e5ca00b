"""The protocol test kit: what a user needs to write protocol tests against a board.

Names are imported on first use (PEP 562): the pytest plugin below this package loads fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Divergence": "._diff",
    "first_divergence": "._diff",
    "message_divergence": "._diff",
    "ExchangeFailed": "._peer",
    "ScriptedPeer": "._peer",
    "StreamEnded": "._peer",
    "FORMAT_VERSION": "._recording",
    "FrameRecord": "._recording",
    "FrameRecorder": "._recording",
    "Recording": "._recording",
    "RecordingError": "._recording",
    "RecordingReader": "._recording",
    "RecordingTransport": "._recording",
    "frame_tag": "._recording",
    "read_recording": "._recording",
    "write_recording": "._recording",
    "ReplayReport": "._replay",
    "replay": "._replay",
    "replay_config": "._replay",
    "reply_key": "._replay",
    "FaultSpec": ".._faults",
    "fault_wrapper": ".._faults",
    "parse_faults": ".._faults",
    "board_peer": "._harness",
    "quick_config": "._harness",
    "running_system": "._harness",
    "serving_board": "._harness",
}
"""Public name -> the module (relative to this package) that defines it."""

__all__ = ["Divergence", "first_divergence", "message_divergence", "ExchangeFailed", "ScriptedPeer", "StreamEnded",
           "FORMAT_VERSION", "FrameRecord", "FrameRecorder", "Recording", "RecordingError", "RecordingReader",
           "RecordingTransport", "frame_tag", "read_recording", "write_recording", "ReplayReport", "replay",
           "replay_config", "reply_key",
           "FaultSpec", "fault_wrapper", "parse_faults", "board_peer", "quick_config", "running_system", "serving_board"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
