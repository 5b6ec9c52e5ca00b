"""The protocol test kit: what a user needs to write protocol tests against a board."""

from ._diff import Divergence, first_divergence, message_divergence
from ._peer import ExchangeFailed, ScriptedPeer, StreamEnded
from ._recording import (FORMAT_VERSION, FrameRecord, FrameRecorder, Recording, RecordingError, RecordingReader,
                         RecordingTransport, frame_tag, read_recording, write_recording)
from ._replay import ReplayReport, replay, replay_config, reply_key
from .._faults import FaultSpec, fault_wrapper, parse_faults  # fault injection, re-exported (one implementation)
from ._harness import board_peer, quick_config, running_system, serving_board

__all__ = ["Divergence", "first_divergence", "message_divergence", "ExchangeFailed", "ScriptedPeer", "StreamEnded",
           "FORMAT_VERSION", "FrameRecord", "FrameRecorder", "Recording", "RecordingError", "RecordingReader",
           "RecordingTransport", "frame_tag", "read_recording", "write_recording", "ReplayReport", "replay",
           "replay_config", "reply_key",
           "FaultSpec", "fault_wrapper", "parse_faults", "board_peer", "quick_config", "running_system", "serving_board"]
