"""The protocol test kit: what a user needs to write protocol tests against a board.

Names are imported on first use (PEP 562): the pytest plugin below this package loads fast.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
