"""Spike records of a batch, and the resumable output buffer the integrators write them into."""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numba import njit

__all__ = ["SpikeRecord", "SpikeLimitError"]


class SpikeLimitError(RuntimeError):
    """A sample emitted more spikes than ``max_spikes_per_sample`` allows (a runaway, e.g. t_ref_us = 0
    with v_reset_lsb >= v_th_lsb, or a cap set too low for the activity)."""


class SpikeRecord(NamedTuple):
    """Spikes of a batch, sorted by (sample, t_us, neuron).

    t_us: float64[k], hardware us since the start of the spike's sample; neuron: int32[k], neuron index
    0..n-1; sample: int32[k], sample (batch entry) index.
    """

    t_us: np.ndarray
    neuron: np.ndarray
    sample: np.ndarray

    @classmethod
    def empty(cls) -> "SpikeRecord":
        return cls(np.empty(0, np.float64), np.empty(0, np.int32), np.empty(0, np.int32))

    @classmethod
    def from_unsorted(cls, t_us, neuron, sample) -> "SpikeRecord":
        """Cast to the record's dtypes and sort by (sample, t_us, neuron)."""
        t = np.asarray(t_us, np.float64).ravel()
        nrn = np.asarray(neuron, np.int32).ravel()
        smp = np.asarray(sample, np.int32).ravel()
        if not t.shape == nrn.shape == smp.shape:
            raise ValueError(f"t_us, neuron and sample must share one length, got {t.size}, {nrn.size}, {smp.size}")
        order = np.lexsort((nrn, t, smp))
        return cls(t[order], nrn[order], smp[order])

    @property
    def n_spikes(self) -> int:
        return int(self.t_us.shape[0])

    def of_sample(self, sample: int) -> "SpikeRecord":
        """The spikes of one sample (sample index kept)."""
        lo, hi = np.searchsorted(self.sample, [sample, sample + 1])
        return SpikeRecord(self.t_us[lo:hi], self.neuron[lo:hi], self.sample[lo:hi])

    def counts(self, n_samples: int, n_neurons: int) -> np.ndarray:
        """int64[n_samples, n_neurons]: spikes per (sample, neuron)."""
        flat = self.sample.astype(np.int64) * n_neurons + self.neuron
        return np.bincount(flat, minlength=n_samples * n_neurons).reshape(n_samples, n_neurons)

    def first_spike_times(self, n_samples: int, neurons) -> np.ndarray:
        """float64[n_samples, len(neurons)]: first spike time (us) of each listed neuron, inf where silent."""
        neurons = np.atleast_1d(np.asarray(neurons, np.int64))
        width = int(max(neurons.max(initial=-1), self.neuron.max(initial=-1))) + 1
        first = np.full((n_samples, width), np.inf)
        np.minimum.at(first, (self.sample, self.neuron), self.t_us)
        return first[:, neurons]


# Kernel status codes (status = [next sample, spikes written, code]).
DONE, BUFFER_FULL, CAP_EXCEEDED = 0, 1, 2


def collect_spikes(run: Callable[..., None], n_samples: int, capacity: int,
                   max_spikes_per_sample: int | None = None, s_begin: int = 0) -> SpikeRecord:
    """Drive a kernel that writes spikes sample by sample into fixed buffers.

    ``run(s_begin, out_t, out_neuron, out_sample, status)`` simulates samples s_begin, s_begin + 1, ...
    and stops when a sample does not fit: samples are independent, so restarting that sample with a
    larger buffer gives the same spikes as one run with a buffer large enough from the start.
    The first call starts at sample ``s_begin``. Spikes come back sorted by (sample, t_us, neuron).
    """
    parts, s, cap = [], int(s_begin), max(int(capacity), 16)
    while True:
        out_t = np.empty(cap, np.float64)
        out_n = np.empty(cap, np.int32)
        out_s = np.empty(cap, np.int32)
        status = np.zeros(3, np.int64)
        run(s, out_t, out_n, out_s, status)
        s_next, n_done, code = (int(x) for x in status)
        parts.append((out_t[:n_done].copy(), out_n[:n_done].copy(), out_s[:n_done].copy()))
        if code == DONE:
            break
        if code == CAP_EXCEEDED:
            raise SpikeLimitError(f"sample {s_next} exceeded max_spikes_per_sample={max_spikes_per_sample} "
                                  "(raise it, or check for a runaway: t_ref_us = 0 with v_reset_lsb >= v_th_lsb)")
        s, cap = s_next, 2 * cap  # BUFFER_FULL: resume at the sample that did not fit
    t = np.concatenate([p[0] for p in parts])
    nrn = np.concatenate([p[1] for p in parts])
    smp = np.concatenate([p[2] for p in parts])
    return _in_record_order(t, nrn, smp)


def collect_spikes_resumable(run: Callable[..., None], capacity: int,
                             max_spikes_per_sample: int | None = None) -> SpikeRecord:
    """Drive a kernel that keeps its own state between calls, growing its output buffers in place.

    ``run(out_t, out_neuron, out_sample, status)`` simulates on from wherever the previous call stopped
    and returns when it is done or when the buffers are full, with status = [sample, spikes kept, code];
    then they are doubled (the spikes kept copied over) and it is called again, and it writes on from
    there: the run does not start over, however long one sample is. Spikes come back sorted by
    (sample, t_us, neuron).
    """
    cap = max(int(capacity), 16)
    out_t, out_n, out_s = np.empty(cap, np.float64), np.empty(cap, np.int32), np.empty(cap, np.int32)
    status = np.zeros(3, np.int64)
    while True:
        run(out_t, out_n, out_s, status)
        s_next, n_done, code = (int(x) for x in status)
        if code == DONE:
            break
        if code == CAP_EXCEEDED:
            raise SpikeLimitError(f"sample {s_next} exceeded max_spikes_per_sample={max_spikes_per_sample} "
                                  "(raise it, or check for a runaway: t_ref_us = 0 with v_reset_lsb >= v_th_lsb)")
        cap *= 2  # BUFFER_FULL: the kernel stopped at an event (or a chunk) that did not fit
        out_t, out_n, out_s = (np.concatenate([a[:n_done], np.empty(cap - n_done, a.dtype)])
                               for a in (out_t, out_n, out_s))
    return _in_record_order(out_t[:n_done].copy(), out_n[:n_done].copy(), out_s[:n_done].copy())


@njit(cache=True, nogil=True)
def _is_record_order(t, nrn, smp) -> bool:
    """Whether (smp, t, nrn) strictly increase, in one pass (numpy's diffs and masks took ~1.2 us of a
    ~27 us Yin-Yang sample). A NaN time makes it False, as the mask did."""
    for i in range(1, t.shape[0]):
        if smp[i] > smp[i - 1]:
            continue
        if smp[i] < smp[i - 1]:
            return False
        if t[i] > t[i - 1]:
            continue
        if not (t[i] == t[i - 1] and nrn[i] > nrn[i - 1]):
            return False
    return True


def _in_record_order(t: np.ndarray, nrn: np.ndarray, smp: np.ndarray) -> SpikeRecord:
    # Kernels emit in event order; simultaneous spikes of a cascade may come out of neuron order.
    if t.size > 1 and not _is_record_order(t, nrn, smp):
        order = np.lexsort((nrn, t, smp))
        t, nrn, smp = t[order], nrn[order], smp[order]
    return SpikeRecord(t, nrn, smp)


def sample_blocks(n_samples: int, threads: int, min_block: int = 8) -> list[tuple[int, int]]:
    """Contiguous sample ranges [lo, hi) covering 0..n_samples, at most ``threads`` of them and each
    of at least ``min_block`` samples (so small batches stay in one piece), near-equal in size."""
    k = max(1, min(int(threads), n_samples // max(min_block, 1)))
    edges = [n_samples * i // k for i in range(k + 1)]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


def concat_records(parts: list[SpikeRecord]) -> SpikeRecord:
    """Records of consecutive sample ranges, joined (still sorted by sample, t_us, neuron)."""
    if len(parts) == 1:
        return parts[0]
    return SpikeRecord(np.concatenate([p.t_us for p in parts]), np.concatenate([p.neuron for p in parts]),
                       np.concatenate([p.sample for p in parts]))
