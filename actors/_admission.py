"""Admission: what one request may make the board allocate, checked before anything is allocated.

A frame's own size is bounded by the link (``max_frame_bytes``), but a few small requests make
the board allocate in proportion to numbers they carry, not to their size: a RunRequest of many
samples (per-sample trial noise, ADC sample buffers for every sample and neuron), a ReadWeights
whose row and column lists repeat entries (its answer holds len(row) x len(column) codes). The
router, the board's door, refuses those beyond ``BoardLimits`` with a chip-limit Error, so no
frame from the host can make an actor allocate more than the configured maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..chip import MADC_PERIOD_TICKS, N_NEURONS, N_ROWS
from ..protocol import Message, ReadWeights, RunRequest

__all__ = ["BoardLimits", "admission_problem", "run_bytes"]


@dataclass(frozen=True)
class BoardLimits:
    """max_run_bytes: working memory one run may claim on the board (trial noise, membrane sample
    buffers), bytes. max_run_ticks: longest run, FPGA ticks (2**40 ticks: about 2.4 hours of
    hardware time)."""

    max_run_bytes: int = 256 * 1024 * 1024
    max_run_ticks: int = 1 << 40

    def __post_init__(self) -> None:
        if self.max_run_bytes < 1:
            raise ValueError(f"max_run_bytes must be >= 1, got {self.max_run_bytes}")
        if self.max_run_ticks < 1:
            raise ValueError(f"max_run_ticks must be >= 1, got {self.max_run_ticks}")


def run_bytes(req: RunRequest) -> int:
    """An upper bound of the bytes a run makes the core hold: threshold jitter (float64 per sample
    and neuron), CADC samples (float64 probe and uint8 code per sample time and neuron) and the
    MADC trace (float64 probe, uint16 code and int64 tick per sample time)."""
    per_sample = N_NEURONS * 8
    if req.cadc_period_ticks:
        per_sample += -(-req.sample_ticks // req.cadc_period_ticks) * N_NEURONS * 9
    if req.madc_neuron >= 0:
        per_sample += -(-req.sample_ticks // MADC_PERIOD_TICKS) * 18
    return req.n_samples * per_sample


def admission_problem(msg: Message, limits: BoardLimits) -> str | None:
    """Why the board refuses ``msg`` for what it would allocate, or None if it may go on."""
    if isinstance(msg, RunRequest):
        ticks = msg.n_samples * msg.sample_ticks
        if ticks > limits.max_run_ticks:
            return (f"run_request.n_samples: {msg.n_samples} samples of {msg.sample_ticks} ticks make "
                    f"{ticks} ticks, beyond the longest run of {limits.max_run_ticks}")
        need = run_bytes(msg)
        if need > limits.max_run_bytes:
            return (f"run_request.n_samples: {msg.n_samples} samples need about {need} bytes of board memory "
                    f"(trial noise and ADC buffers), beyond the limit of {limits.max_run_bytes}")
    elif isinstance(msg, ReadWeights):
        n = msg.row.shape[0] * msg.column.shape[0]
        if n > N_ROWS * N_NEURONS:
            return (f"read_weights.row: a block of {msg.row.shape[0]} x {msg.column.shape[0]} codes is larger "
                    f"than the synapse array ({N_ROWS} x {N_NEURONS})")
    return None
