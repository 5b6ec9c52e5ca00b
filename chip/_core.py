"""The analog core as plain compute: configuration, synapse array, runs in, spikes and samples out.

``AnalogCore`` owns one die (the chip seed's device mismatch), the configured neuron circuits and
the synapse array. It is fed protocol messages and returns protocol messages; the core actor only
moves them. A run's samples are simulated as soon as the router's horizon has passed their end:
each sample starts from rest and its trial noise is drawn per (seed, run, sample), so the spikes
never depend on how the router cut the playback into chunks.

A run integrates with the exact event-driven kernel (``simulate_events``), or, when its request
asks for a step (``RunRequest.step_ticks``), with the time-stepped one (``simulate_steps``): spikes
then fall on grid points and each CADC sample reads the membrane just before its grid point's
threshold check (what surrogate-gradient training in the loop evaluates).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..protocol import (
    TICKS_PER_US,
    Ack,
    ChipLimitError,
    ConfigureNeurons,
    ConfigureRows,
    MembraneSamples,
    Message,
    NeuronTrace,
    ReadWeights,
    RunComplete,
    RunRequest,
    SpikeBatch,
    Weights,
    WriteWeights,
)
from ._adc import CADC_MIN_PERIOD_TICKS, cadc_read, madc_read, madc_sample_ticks
from ._core_kernels import playback_inputs, spike_stream
from ._lif_event import _executor, simulate_events
from ._lif_step import simulate_steps
from ._mismatch import (
    CADC_NOISE_STREAM,
    MADC_NOISE_STREAM,
    MismatchSpec,
    draw_die,
    nominal_codes,
    realised_params,
    threshold_jitter,
)
from ._spikes import sample_blocks
from ._params import N_NEURONS, N_ROWS, NEURON_LABEL_BASE, WEIGHT_MAX, NeuronParams
from ._synapses import (CURRENT_LSB_PER_CODE, SynapseArray, _add_rows, _write_block, refresh_effective_weights,
                        row_sources)

__all__ = ["CoreConfig", "AnalogCore"]

_MIN_THREAD_BLOCK = 32  # samples: below that a worker thread costs more than it saves (~20-40 us a Yin-Yang sample)


@dataclass(frozen=True)
class CoreConfig:
    """mismatch: magnitudes of device mismatch and noise (MismatchSpec.ideal() for a perfect chip).
    calibrate: run the calibration when neurons are configured (else nominal codes are used).
    max_spikes_per_sample: cap against runaway activity (None: the integrator's default).
    threads: threads the event-driven integrator shares a run's samples between (0: one per CPU);
    the results do not depend on it (samples are independent)."""

    mismatch: MismatchSpec = field(default_factory=MismatchSpec)
    calibrate: bool = True
    max_spikes_per_sample: int | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")

    @property
    def n_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


@dataclass
class _Run:
    request: RunRequest
    t: list = field(default_factory=list)
    label: list = field(default_factory=list)
    sample: list = field(default_factory=list)
    next_sample: int = 0
    events_in: int = 0
    events_out: int = 0


CUT_BY_SHUTDOWN = "cut_by_shutdown"
"""``RunComplete.dropped`` reason of a run whose playback a Shutdown cut short."""


class AnalogCore:
    """One emulated analog core. ``handle(msg)`` returns the messages to send back."""

    def __init__(self, config: CoreConfig = CoreConfig(), chip_seed: int = 0, seed: int = 0) -> None:
        self.config = config
        self.chip_seed = chip_seed
        self.seed = seed
        self.die = draw_die(chip_seed, config.mismatch)
        # The synapse array as mutable arrays: a weight write changes a block in place (no copy and
        # re-check of the whole 128 KB array per training step); ``array`` gives a read-only snapshot.
        self._weight = np.zeros((N_ROWS, N_NEURONS), np.uint8)
        self._row_label = np.zeros(N_ROWS, np.uint16)
        self._row_sign = np.zeros(N_ROWS, np.int8)
        self._array: SynapseArray | None = None
        self._gain = np.ascontiguousarray(self.die.synapse_gain, np.float64)
        self.targets = {name: np.full(N_NEURONS, np.nan) for name in NeuronParams._fields}
        self.calibration_report: dict = {}
        self._circuits = np.zeros(0, np.int64)  # configured neuron circuits, ascending
        self._params: NeuronParams | None = None
        self._w_lsb: np.ndarray | None = None
        self._rows_map: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # row_sources + float signs
        self._input_labels = np.zeros(0, np.int64)
        self._src_lut_labels: np.ndarray | None = None  # the _input_labels that _src_lut was built for
        self._src_lut = np.zeros(0, np.int32)
        self._runs: dict[int, _Run] = {}

    # -- configuration ----------------------------------------------------------------------
    @property
    def array(self) -> SynapseArray:
        """The synapse array as stored now (a read-only snapshot; later writes do not change it)."""
        if self._array is None:
            self._array = SynapseArray(self._weight, self._row_label, self._row_sign)
        return self._array

    @property
    def circuits(self) -> np.ndarray:
        """Configured neuron circuits, ascending: the neurons the core simulates."""
        return self._circuits

    def realised(self) -> NeuronParams:
        """The parameters the configured circuits really have on this die, after calibration."""
        if self._params is None:
            self._params = self._realise()
        return self._params

    def configure_neurons(self, msg: ConfigureNeurons) -> None:
        for name in NeuronParams._fields:
            self.targets[name][msg.neuron.astype(np.int64)] = getattr(msg, name)
        self._circuits = np.flatnonzero(~np.isnan(self.targets["tau_mem_us"]))
        self._params = None
        self._w_lsb = None
        self._rows_map = None
        self.realised()  # fail now, not at the next run, if the chip cannot hold these targets

    def _realise(self) -> NeuronParams:
        c = self._circuits
        targets = NeuronParams(*(self.targets[name][c] for name in NeuronParams._fields))
        try:
            codes = nominal_codes(targets)
        except ValueError as exc:
            raise ChipLimitError(f"configure_neurons: {exc}") from exc
        if self.config.calibrate and c.size:
            from ._calibration import calibrate  # the calibration needs the integrator; import lazily

            result = calibrate(self.die, targets, c, seed=self.chip_seed)
            codes = result.codes
            self.calibration_report = result.summary() if hasattr(result, "summary") else {}
        return realised_params(self.die, codes, c)

    def configure_rows(self, msg: ConfigureRows) -> None:
        if msg.row.size and msg.row.max() >= N_ROWS:
            raise ChipLimitError(f"configure_rows.row: row {msg.row.max()} does not exist (rows 0..{N_ROWS - 1})")
        self._row_label[msg.row], self._row_sign[msg.row] = msg.source_label, msg.sign
        self._array = None
        self._w_lsb = None
        self._rows_map = None

    def write_weights(self, msg: WriteWeights) -> Ack:
        self._check_block(msg.row, msg.column, "write_weights")
        if msg.weight.size and msg.weight.max() > WEIGHT_MAX:
            raise ValueError(f"write_weights.weight: codes must be <= {WEIGHT_MAX}, got {msg.weight.max()}")
        rows = msg.row.astype(np.int64)
        _write_block(self._weight, rows, msg.column.astype(np.int64), np.ascontiguousarray(msg.weight))
        self._array = None
        if self._w_lsb is not None:
            # Only the sources these rows answer are summed again (same bits as a full recomputation).
            # A fresh matrix, not an update in place: a caller may still hold the previous one.
            w = self._w_lsb.copy()
            src, row, sign = self._rows_map
            refresh_effective_weights(w, rows, src, row, self._circuits, sign, self._weight, self._gain)
            self._w_lsb = w
        return Ack(request_id=msg.request_id, what="write_weights")

    def read_weights(self, msg: ReadWeights) -> Weights:
        self._check_block(msg.row, msg.column, "read_weights")
        block = self._weight[np.ix_(msg.row.astype(np.int64), msg.column.astype(np.int64))]
        return Weights(request_id=msg.request_id, row=msg.row, column=msg.column, weight=block)

    @staticmethod
    def _check_block(row: np.ndarray, column: np.ndarray, what: str) -> None:
        if row.size and row.max() >= N_ROWS:
            raise ChipLimitError(f"{what}.row: row {row.max()} does not exist (rows 0..{N_ROWS - 1})")
        if column.size and column.max() >= N_NEURONS:
            raise ChipLimitError(f"{what}.column: column {column.max()} does not exist (0..{N_NEURONS - 1})")

    def weights_lsb(self) -> np.ndarray:
        """The effective weight matrix of the configured network, float64[n_in + n, n]."""
        if self._w_lsb is None:
            if self._rows_map is None:  # once per row or neuron configuration, not per weight write
                labels = self._row_label[self._row_sign != 0].astype(np.int64)
                self._input_labels = np.unique(labels[labels < NEURON_LABEL_BASE])
                src, rows = row_sources(self._row_label, self._row_sign, self._input_labels, self._circuits)
                self._rows_map = (src, rows, self._row_sign.astype(np.float64))
            src, rows, sign = self._rows_map
            w = np.zeros((self._input_labels.size + self._circuits.size, self._circuits.size), np.float64)
            _add_rows(w, src, rows, self._circuits, sign, self._weight, self._gain, CURRENT_LSB_PER_CODE)
            self._w_lsb = w
        return self._w_lsb

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, req: RunRequest) -> None:
        if req.run_id in self._runs:
            raise ValueError(f"run_request.run_id: run {req.run_id} is already running")
        if req.cadc_period_ticks and req.cadc_period_ticks < CADC_MIN_PERIOD_TICKS:
            raise ChipLimitError(f"run_request.cadc_period_ticks: {req.cadc_period_ticks} is below the CADC's "
                                 f"minimum {CADC_MIN_PERIOD_TICKS} ticks (1.7 us)")
        if req.step_ticks and req.cadc_period_ticks % req.step_ticks:
            raise ValueError(f"run_request.cadc_period_ticks: {req.cadc_period_ticks} is not a multiple of "
                             f"step_ticks {req.step_ticks} (CADC samples are taken at grid points)")
        if req.madc_neuron >= 0 and req.madc_neuron not in set(self._circuits.tolist()):
            raise ChipLimitError(f"run_request.madc_neuron: neuron {req.madc_neuron} is not configured")
        self._runs[req.run_id] = _Run(req)

    def has_run(self, run_id: int) -> bool:
        return run_id in self._runs

    def samples_due(self, batch: SpikeBatch) -> int:
        """How many samples ``feed(batch)`` would simulate (0 if it names no open run): what a caller
        weighs to decide where to run it."""
        run = self._runs.get(batch.run_id)
        if run is None:
            return 0
        req = run.request
        return max(0, min(batch.horizon_ticks // req.sample_ticks, req.n_samples) - run.next_sample)

    def feed(self, batch: SpikeBatch) -> list[Message]:
        """Take playback events; simulate every sample whose end the horizon has passed."""
        run = self._runs.get(batch.run_id)
        if run is None:
            raise ValueError(f"spike_batch.run_id: no run {batch.run_id} is open")
        run.t.append(batch.t_ticks)
        run.label.append(batch.label)
        run.sample.append(batch.sample)
        run.events_in += batch.n_events()
        req = run.request
        done = min(batch.horizon_ticks // req.sample_ticks, req.n_samples)
        out: list[Message] = []
        if done > run.next_sample:
            out += self._simulate(run, run.next_sample, done)
            run.next_sample = done
        if run.next_sample >= req.n_samples:
            out.append(RunComplete(run_id=req.run_id, n_samples=req.n_samples, events_in=run.events_in,
                                   events_out=run.events_out))
            del self._runs[req.run_id]
        return out

    def cut_open_runs(self) -> list[RunComplete]:
        """Close every open run: its playback will never be complete (the host shut the board down).

        Each gets a RunComplete whose ``dropped["cut_by_shutdown"]`` counts the input events it had
        received but not simulated; its samples from ``next_sample`` on were never run."""
        out = []
        for run_id, run in sorted(self._runs.items()):
            pending = int(sum(np.count_nonzero(s >= run.next_sample) for s in run.sample))
            out.append(RunComplete(run_id=run_id, n_samples=run.next_sample, events_in=run.events_in,
                                   events_out=run.events_out, dropped={CUT_BY_SHUTDOWN: pending}))
        self._runs.clear()
        return out

    def _simulate(self, run: _Run, first: int, stop: int) -> list[Message]:
        req = run.request
        t = np.concatenate(run.t) if len(run.t) > 1 else run.t[0] if run.t else np.zeros(0, np.int64)
        label = np.concatenate(run.label) if len(run.label) > 1 else run.label[0] if run.label else np.zeros(0, np.uint16)
        sample = np.concatenate(run.sample) if len(run.sample) > 1 else run.sample[0] if run.sample else np.zeros(0, np.uint32)
        w = self.weights_lsb()
        params = self.realised()
        # Events of samples [first, stop) whose label a synapse row answers (the hardware ignores the
        # others too), as kernel inputs; events of later samples wait for their horizon.
        t_us, in_src, in_smp, later = playback_inputs(t, label, sample, first, stop, self._src_of_label(), req.sample_ticks)
        run.t, run.label, run.sample = [t[later]], [label[later]], [sample[later].astype(np.uint32, copy=False)]
        n_batch = stop - first
        if not (req.step_ticks or req.cadc_period_ticks or req.madc_neuron >= 0):
            out_t, out_label, out_sample = self._spike_blocks(w, params, t_us, in_src, in_smp, first, stop, req)
            run.events_out += int(out_t.size)
            return [SpikeBatch(run_id=req.run_id, t_ticks=out_t, label=out_label, sample=out_sample,
                               horizon_ticks=stop * req.sample_ticks)]
        # trial noise of these samples only: keyed by (seed, run, sample, circuit), so chunking cannot change it
        jitter = threshold_jitter(self.seed, req.run_id, stop - first, self._circuits, self.die.spec, first_sample=first)
        t_end_us = req.sample_ticks / TICKS_PER_US
        probe_t = probe_n = None
        cadc_ticks = np.zeros(0, np.int64)
        if req.cadc_period_ticks:
            cadc_ticks = np.arange(0, req.sample_ticks, req.cadc_period_ticks, dtype=np.int64)
            probe_t, probe_n = cadc_ticks / TICKS_PER_US, np.arange(self._circuits.size)
        stepped = None
        if req.step_ticks:
            # the time-stepped integrator: spikes on grid points, CADC reads V before each grid point's threshold
            stepped = simulate_steps(w, params, t_us, in_src, in_smp, n_batch, t_end_us, req.step_ticks / TICKS_PER_US,
                                     v_th_offset_lsb=jitter, record=req.madc_neuron >= 0,
                                     record_pre=bool(req.cadc_period_ticks))
            spikes = stepped.spikes
            tick_in_sample = np.rint(spikes.t_us * (TICKS_PER_US / req.step_ticks)).astype(np.int64) * req.step_ticks
            v_probe = stepped.v_pre_lsb[:, cadc_ticks // req.step_ticks, :] if req.cadc_period_ticks else None
        else:
            result = simulate_events(w, params, t_us, in_src, in_smp, n_batch, t_end_us,
                                     v_th_offset_lsb=jitter, probe_t_us=probe_t, probe_neuron=probe_n,
                                     max_spikes_per_sample=self.config.max_spikes_per_sample,
                                     threads=self.config.n_threads)
            spikes, v_probe = result.spikes, result.v_probe_lsb
            tick_in_sample = np.floor(spikes.t_us * TICKS_PER_US).astype(np.int64)
        out_t, out_label, out_sample = spike_stream(tick_in_sample, spikes.neuron, spikes.sample, first,
                                                    req.sample_ticks, self._circuits)
        run.events_out += int(out_t.size)
        out: list[Message] = [SpikeBatch(run_id=req.run_id, t_ticks=out_t, label=out_label, sample=out_sample,
                                         horizon_ticks=stop * req.sample_ticks)]
        if req.cadc_period_ticks:
            out.append(self._cadc(run, v_probe, cadc_ticks, first, stop))
        if req.madc_neuron >= 0:
            out += self._madc(run, w, params, jitter, t_us, in_src, in_smp, first, stop, stepped)
        return out

    def _spike_blocks(self, w: np.ndarray, params: NeuronParams, t_us: np.ndarray, in_src: np.ndarray,
                      in_smp: np.ndarray, first: int, stop: int, req: RunRequest):
        """The output stream (t_ticks, label, sample) of samples [first, stop) of a run that asks for
        spikes only (no CADC, no MADC, exact dynamics), with each worker thread taking a block of
        samples all the way: its trial noise, the integrator, the conversion to ticks and labels. Only
        the playback before and the join after run on one thread (done by one thread, the rest took
        ~4 of ~16 us a Yin-Yang sample on 2 cores). The same stream as one block: every step is per
        sample, the noise is keyed by sample, and block k's ticks all come before block k + 1's."""
        n_batch = stop - first
        t_end_us = req.sample_ticks / TICKS_PER_US
        blocks = sample_blocks(n_batch, self.config.n_threads, min_block=_MIN_THREAD_BLOCK)
        bounds = np.searchsorted(in_smp, [lo for lo, _ in blocks] + [n_batch])

        def block(b: int):
            (lo, hi), a, z = blocks[b], bounds[b], bounds[b + 1]
            jitter = threshold_jitter(self.seed, req.run_id, hi - lo, self._circuits, self.die.spec,
                                      first_sample=first + lo)
            spikes = simulate_events(w, params, t_us[a:z], in_src[a:z], in_smp[a:z] - lo, hi - lo, t_end_us,
                                     v_th_offset_lsb=jitter, max_spikes_per_sample=self.config.max_spikes_per_sample,
                                     threads=1).spikes
            tick_in_sample = np.floor(spikes.t_us * TICKS_PER_US).astype(np.int64)
            return spike_stream(tick_in_sample, spikes.neuron, spikes.sample, first + lo, req.sample_ticks,
                                self._circuits)

        if len(blocks) == 1:
            return block(0)
        parts = list(_executor(len(blocks)).map(block, range(len(blocks))))
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))

    def _src_of_label(self) -> np.ndarray:
        """int32[65536]: the input row (index into ``_input_labels``) of each event label, -1 where no
        switched-on row answers it. Rebuilt when the input labels change (after weights_lsb)."""
        if self._src_lut_labels is not self._input_labels:
            lut = np.full(1 << 16, -1, np.int32)
            lut[self._input_labels] = np.arange(self._input_labels.size, dtype=np.int32)
            self._src_lut, self._src_lut_labels = lut, self._input_labels
        return self._src_lut

    def _cadc(self, run: _Run, v: np.ndarray, cadc_ticks: np.ndarray, first: int, stop: int) -> MembraneSamples:
        req = run.request
        offset = self.die.cadc_offset_lsb[self._circuits]
        codes = np.empty(v.shape, np.uint8)
        for k in range(stop - first):  # one generator per sample keeps the noise independent of chunking
            rng = np.random.default_rng([self.seed, req.run_id, CADC_NOISE_STREAM, first + k])
            codes[k] = cadc_read(v[k], offset, rng, noise_lsb=self.die.spec.cadc_noise_lsb)
        ticks = (np.arange(first, stop, dtype=np.int64)[:, None] * req.sample_ticks + cadc_ticks[None, :]).ravel()
        return MembraneSamples(run_id=req.run_id, t_ticks=ticks, neuron=self._circuits.astype(np.uint16),
                               adc_lsb=codes.reshape(-1, self._circuits.size))

    def _madc(self, run: _Run, w, params, jitter, t_us, src, smp, first: int, stop: int, stepped=None) -> list[Message]:
        req = run.request
        j = int(np.flatnonzero(self._circuits == req.madc_neuron)[0])
        ticks = madc_sample_ticks(0, req.sample_ticks)
        if stepped is not None:  # the stepped membrane holds its value between grid points
            v = stepped.v_lsb[:, ticks // req.step_ticks, j]
        else:
            v = simulate_events(w, params, t_us, src, smp, stop - first, req.sample_ticks / TICKS_PER_US,
                                v_th_offset_lsb=jitter, probe_t_us=ticks / TICKS_PER_US,
                                probe_neuron=np.array([j]), max_spikes_per_sample=self.config.max_spikes_per_sample,
                                threads=self.config.n_threads).v_probe_lsb[:, :, 0]
        out = []
        for k in range(stop - first):
            rng = np.random.default_rng([self.seed, req.run_id, MADC_NOISE_STREAM, first + k])
            codes = madc_read(v[k], rng, gain_codes_per_lsb=self.die.madc_gain_codes_per_lsb,
                              offset_codes=self.die.madc_offset_codes, noise_codes=self.die.spec.madc_noise_codes)
            out.append(NeuronTrace(run_id=req.run_id, neuron=req.madc_neuron,
                                   t_ticks=(first + k) * req.sample_ticks + ticks, adc_lsb=codes))
        return out
