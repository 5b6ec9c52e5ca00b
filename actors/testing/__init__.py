"""The protocol test kit: what a user needs to write protocol tests against a board."""

from ._diff import Divergence, first_divergence, message_divergence
from ._peer import ExchangeFailed, ScriptedPeer, StreamEnded
from ._recording import (FORMAT_VERSION, FrameRecord, FrameRecorder, Recording, RecordingError, RecordingReader,
                         RecordingTransport, frame_tag, read_recording)
from ._replay import ReplayReport, replay, replay_config, reply_key

__all__ = ["Divergence", "first_divergence", "message_divergence", "ExchangeFailed", "ScriptedPeer", "StreamEnded",
           "FORMAT_VERSION", "FrameRecord", "FrameRecorder", "Recording", "RecordingError", "RecordingReader",
           "RecordingTransport", "frame_tag", "read_recording", "ReplayReport", "replay", "replay_config", "reply_key"]
