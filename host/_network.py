"""Network descriptions on the host and their placement on the chip.

A network is a set of inputs (spike labels) and model neurons (hidden, then output) placed on
neuron circuits, with signed weights in 6-bit code units from every source (inputs, then the
model neurons) to every model neuron. ``place`` turns it into the configuration messages a board
takes: neuron targets, synapse-row routing and the weight block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chip import NEURON_LABEL_BASE, NeuronParams, uniform_params
from ..chip._synapses import QuantReport, RowLayout, SynapseArray, map_network
from ..protocol import ConfigureLearning, ConfigureNeurons, ConfigureRows

__all__ = ["Network", "Placement", "feedforward", "place"]


@dataclass(frozen=True, eq=False)
class Network:
    """input_label uint16[n_in]; hidden, output int64 circuits; targets: NeuronParams of the model
    neurons (hidden then output); w_code float64[n_in + n, n] signed weights in codes (source
    order: inputs, hidden, output; neuron order: hidden, output); trainable bool[n_in + n, n]."""

    input_label: np.ndarray
    hidden: np.ndarray
    output: np.ndarray
    targets: NeuronParams
    w_code: np.ndarray
    trainable: np.ndarray

    @property
    def circuits(self) -> np.ndarray:
        return np.concatenate([self.hidden, self.output]).astype(np.int64)

    @property
    def n_in(self) -> int:
        return int(self.input_label.size)

    @property
    def n(self) -> int:
        return int(self.hidden.size + self.output.size)

    def source_labels(self) -> np.ndarray:
        return np.concatenate([self.input_label.astype(np.int64), NEURON_LABEL_BASE + self.circuits])


def feedforward(n_in: int, n_hidden: int, n_out: int, targets: dict, rng: np.random.Generator, *,
                hidden_init: tuple[float, float] = (20.0, 20.0), output_init: tuple[float, float] = (20.0, 20.0),
                first_label: int = 0) -> Network:
    """A layered network inputs -> hidden -> output on circuits 0..n_hidden+n_out-1, weights drawn
    from normal distributions (mean, std) in codes."""
    for name, v in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    n = n_hidden + n_out
    w = np.zeros((n_in + n, n))
    trainable = np.zeros_like(w, dtype=bool)
    trainable[:n_in, :n_hidden] = True
    trainable[n_in:n_in + n_hidden, n_hidden:] = True
    w[:n_in, :n_hidden] = rng.normal(hidden_init[0], hidden_init[1], (n_in, n_hidden))
    w[n_in:n_in + n_hidden, n_hidden:] = rng.normal(output_init[0], output_init[1], (n_hidden, n_out))
    return Network(np.arange(first_label, first_label + n_in, dtype=np.uint16), np.arange(n_hidden, dtype=np.int64),
                   np.arange(n_hidden, n, dtype=np.int64), uniform_params(n, **targets), w, trainable)


@dataclass(frozen=True, eq=False)
class Placement:
    """What a board is told to hold the network: the messages and the quantisation report."""

    neurons: ConfigureNeurons
    rows: ConfigureRows
    weight_rows: np.ndarray  # uint16[r]
    weight_columns: np.ndarray  # uint16[n]
    weight_block: np.ndarray  # uint8[r, n]
    layout: RowLayout
    array: SynapseArray
    report: QuantReport

    def learning(self, net: Network, *, loss: str = "ttfs", optimiser: str = "adam",
                 params: dict | None = None) -> ConfigureLearning:
        return ConfigureLearning(loss=loss, optimiser=optimiser, input_label=net.input_label,
                                 hidden_neuron=net.hidden.astype(np.uint16), output_neuron=net.output.astype(np.uint16),
                                 trainable=net.trainable.astype(np.uint8), params=dict(params or {}))


def place(net: Network) -> Placement:
    """Map ``net`` onto the synapse array: one excitatory and one inhibitory row per source that
    projects anywhere (raises ChipLimitError if it does not fit)."""
    projects = net.trainable.any(axis=1) | (net.w_code != 0).any(axis=1)
    mapping = map_network(net.w_code[projects], net.source_labels()[projects], net.circuits, rows="pair")
    layout, array = mapping.layout, mapping.array
    rows = np.concatenate([layout.exc_row[layout.exc_row >= 0], layout.inh_row[layout.inh_row >= 0]])
    rows.sort()
    t = net.targets
    neurons = ConfigureNeurons(neuron=net.circuits.astype(np.uint16), tau_mem_us=t.tau_mem_us, tau_syn_us=t.tau_syn_us,
                               v_leak_lsb=t.v_leak_lsb, v_reset_lsb=t.v_reset_lsb, v_th_lsb=t.v_th_lsb, t_ref_us=t.t_ref_us)
    routing = ConfigureRows(row=rows.astype(np.uint16), source_label=array.row_label[rows], sign=array.row_sign[rows])
    block = array.weight[np.ix_(rows, net.circuits)]
    return Placement(neurons, routing, rows.astype(np.uint16), net.circuits.astype(np.uint16), block,
                     layout, array, mapping.report)
