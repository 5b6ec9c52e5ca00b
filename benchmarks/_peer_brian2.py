"""The Brian2 side of ``core_vs_brian2``; runs under the Brian2 peer venv's interpreter, imports no neurosplit.

    <peer python> benchmarks/_peer_brian2.py IN.npz OUT.npz

IN.npz holds the network and the input trains (see ``core_vs_brian2.write_case``); OUT.npz gets the
output spikes (``spike_i``, ``spike_t_ms``) and the timings: ``compile_s`` (code generation + make, the
whole ``device.build(run=False)``), ``make_s`` (make alone), ``run_binary_s[r]`` (wall time of each run
of the compiled binary: process start, loading arrays, simulating, writing results) and
``inner_run_s[r]`` (Brian2's own clock around the network loop, ``device._last_run_time``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import numpy as np

TAU_NUDGE = 1e-6


def main(in_path: str, out_path: str) -> None:
    case = np.load(in_path)
    import brian2 as b2
    from brian2 import ms

    build_dir = tempfile.mkdtemp(prefix="neurosplit_brian2_")
    try:
        b2.set_device("cpp_standalone", directory=build_dir, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0  # one thread, like our kernels
        b2.defaultclock.dt = float(case["dt_bio_ms"]) * ms
        n_in, n = case["w_lsb"].shape
        p = {k: float(case[k]) for k in ("tau_mem_bio_ms", "tau_syn_bio_ms", "v_leak_lsb", "v_reset_lsb",
                                         "v_th_lsb", "t_ref_bio_ms")}
        # Brian2's exact solver turns tau_mem == tau_syn with (unless refractory) into 0/0 (it divides by
        # not_refractory - 1), so equal time constants get tau_syn nudged by TAU_NUDGE (relative): the
        # dynamics move by ~1e-6, the cancellation in the generic propagator costs ~1e-10.
        tau_syn_ms = p["tau_syn_bio_ms"] * (1.0 + TAU_NUDGE) if p["tau_syn_bio_ms"] == p["tau_mem_bio_ms"] \
            else p["tau_syn_bio_ms"]
        eqs = """
        dv/dt = (v_leak - v + I) / tau_mem : 1 (unless refractory)
        dI/dt = -I / tau_syn : 1
        """
        ns = {"tau_mem": p["tau_mem_bio_ms"] * ms, "tau_syn": tau_syn_ms * ms, "v_leak": p["v_leak_lsb"],
              "v_reset": p["v_reset_lsb"], "v_th": p["v_th_lsb"]}
        neurons = b2.NeuronGroup(n, eqs, threshold="v >= v_th", reset="v = v_reset",
                                 refractory=p["t_ref_bio_ms"] * ms, method="exact", namespace=ns, name="lif")
        neurons.v = p["v_leak_lsb"]
        neurons.I = 0.0
        inputs = b2.SpikeGeneratorGroup(n_in, case["in_src"], case["in_t_bio_ms"] * ms, name="poisson")
        syn = b2.Synapses(inputs, neurons, "w : 1", on_pre="I += w", name="syn")
        pre, post = np.divmod(np.arange(n_in * n), n)
        syn.connect(i=pre, j=post)
        syn.w = case["w_lsb"].ravel()  # row-major: entry pre * n + post
        mon = b2.SpikeMonitor(neurons, name="spikes")
        b2.run(float(case["t_end_bio_ms"]) * ms, namespace={})

        t0 = time.perf_counter()
        b2.device.build(directory=build_dir, compile=True, run=False, with_output=False)
        compile_s = time.perf_counter() - t0
        make_s = b2.device.timers["compile"]["make"]
        run_binary_s, inner_run_s = [], []
        for _ in range(int(case["repeats"])):
            b2.device.run(directory=build_dir, with_output=False)
            run_binary_s.append(b2.device.timers["run_binary"])
            inner_run_s.append(b2.device._last_run_time)
        np.savez(out_path, spike_i=np.asarray(mon.i[:], np.int64), spike_t_ms=np.asarray(mon.t[:] / ms),
                 compile_s=compile_s, make_s=make_s if make_s is not None else np.nan,
                 run_binary_s=np.array(run_binary_s), inner_run_s=np.array(inner_run_s),
                 brian2_version=b2.__version__, tau_syn_bio_ms=tau_syn_ms,
                 compile_flags=" ".join(b2.prefs.codegen.cpp.extra_compile_args_gcc),
                 state_update=neurons.state_updater.abstract_code)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} IN.npz OUT.npz")
    main(sys.argv[1], sys.argv[2])
