"""Neuron parameters and chip geometry: the records every chip function takes.

Units: hardware microseconds for times (``_us``), CADC codes for potentials (``_lsb``; one LSB is
roughly 3-4 mV on BrainScaleS-2, bss2_facts.md §5). Synaptic currents are expressed in the same
LSB as the membrane: a current I held for long drives the membrane to ``v_leak_lsb + I``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "N_NEURONS",
    "N_ROWS",
    "WEIGHT_MAX",
    "NEURON_LABEL_BASE",
    "NeuronParams",
    "uniform_params",
    "YINYANG_TARGETS",
    "GENERIC_TARGETS",
]

N_NEURONS = 512
"""Neuron circuits (synapse-array columns) of the emulated chip (bss2_facts.md §1)."""

N_ROWS = 256
"""Synapse rows of the emulated synapse array."""

WEIGHT_MAX = 63
"""Largest 6-bit synapse weight code."""

NEURON_LABEL_BASE = 1 << 13
"""Neuron ``n`` emits spikes with label ``NEURON_LABEL_BASE + n``; external inputs use labels below it."""


class NeuronParams(NamedTuple):
    """Per-neuron parameters, each float64[n]. Dynamics (hardware time t in us)::

        tau_mem_us dV/dt = (v_leak_lsb - V) + I,   tau_syn_us dI/dt = -I,
        V >= v_th_lsb  ->  spike, V = v_reset_lsb, held for t_ref_us.

    A presynaptic spike through a synapse of effective weight w (LSB) makes I jump by w.
    """

    tau_mem_us: np.ndarray  # membrane time constant, hardware microseconds
    tau_syn_us: np.ndarray  # synaptic time constant, hardware microseconds
    v_leak_lsb: np.ndarray  # leak (resting) potential, CADC LSB
    v_reset_lsb: np.ndarray  # reset potential, CADC LSB
    v_th_lsb: np.ndarray  # firing threshold, CADC LSB
    t_ref_us: np.ndarray  # refractory period, hardware microseconds

    @property
    def n(self) -> int:
        return int(self.tau_mem_us.shape[0])

    def take(self, index) -> "NeuronParams":
        """The parameters of the neurons at ``index`` (any numpy index)."""
        return NeuronParams(*(np.ascontiguousarray(a[index]) for a in self))


def uniform_params(n: int, *, tau_mem_us: float, tau_syn_us: float, v_leak_lsb: float,
                   v_reset_lsb: float, v_th_lsb: float, t_ref_us: float) -> NeuronParams:
    """``n`` identical neurons."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    full = lambda v: np.full(n, float(v), dtype=np.float64)  # noqa: E731
    return NeuronParams(full(tau_mem_us), full(tau_syn_us), full(v_leak_lsb), full(v_reset_lsb),
                        full(v_th_lsb), full(t_ref_us))


YINYANG_TARGETS = dict(tau_mem_us=12.0, tau_syn_us=6.0, v_leak_lsb=80.0, v_reset_lsb=80.0,
                       v_th_lsb=150.0, t_ref_us=30.0)
"""EventProp Yin-Yang targets of Pehle et al. 2023 / jaxsnn yinyang_bss2 (bss2_facts.md §9, §10)."""

GENERIC_TARGETS = dict(tau_mem_us=10.0, tau_syn_us=10.0, v_leak_lsb=80.0, v_reset_lsb=70.0,
                       v_th_lsb=125.0, t_ref_us=2.0)
"""calix default calibration targets (bss2_facts.md §7)."""
