"""The full analog core against Brian2: biological seconds simulated per wall second, compile time apart.

    . /work/venv/bin/activate && python -m benchmarks.core_vs_brian2 --json out/core_vs_brian2.json

Network: the full chip, 256 Poisson inputs at 20 Hz biological (20 kHz on chip) into 512 LIF neurons,
all to all (input -> neuron only), GENERIC_TARGETS neurons (tau_mem = tau_syn = 10 us on chip = 10 ms
bio, leak 80, reset 70, threshold 125 LSB, t_ref 2 us), weights drawn from N(mean, sd) LSB (seeded) so the
neurons fire at ~5-30 Hz bio. The same input trains (on the 0.1 ms grid, at most one spike per source
and bin, as Brian2's SpikeGeneratorGroup requires) go to:

- ours, ``neurosplit.chip.simulate_events`` (exact event-driven, the emulator's path) and
  ``neurosplit.chip.simulate_steps`` (exact one-step propagator on a 0.1 us = 0.1 ms bio grid);
  compile time is first call minus steady state, with numba's cache pointed at an empty directory so the
  first call really compiles (``--warm-cache`` keeps the project's cache: then it is cache loading);
- Brian2 in ``cpp_standalone`` mode at dt = 0.1 ms, in its own venv (``benchmarks/.peers/brian2``), same
  equations (``on_pre: I += w``); compile = ``device.build(run=False)`` (code generation + make), run =
  wall time of each run of the compiled binary (Brian2's ``device.timers['run_binary']``), best of
  ``--repeats``; Brian2's own clock around its network loop (``device._last_run_time``) is printed too.

Timing is best of ``--repeats`` after a warm-up; the header carries versions, CPU, threads (both sides run
one thread), the load average and the seed. Dynamics must agree: the mean output rates of all three within
``--rate-tolerance`` (relative), else the script says so and exits 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _common

BRIAN2_VERSION = "2.11.0"
BRIAN2_MIN_PYTHON = (3, 13)  # Brian2 2.11 on PyPI requires Python >= 3.13
BRIAN2_FALLBACK = "2.9.0"  # the newest release for Python 3.11, used when no Python >= 3.13 is found

REFERENCE = {"label": "issue: Brian2 2.9 cpp_standalone dt 0.1 ms", "bio_s_per_wall_s": 37.0,
             "synaptic_events_per_s": 9.6e7, "compile_s": 9.5}
"""The figure the issue quotes for this network (not measured here)."""

RUNNER = Path(__file__).with_name("_peer_brian2.py")


class Case(NamedTuple):
    """One benchmark network and its input trains (hardware us = bio ms numerically, ACCELERATION 1000)."""

    w_in_lsb: np.ndarray  # float64[n_in, n]: input -> neuron weight, LSB of current jump
    in_bin: np.ndarray  # int64[m]: 0.1 ms bins of the input spikes, sorted by (bin, source)
    in_src: np.ndarray  # int64[m]: input index
    dt_bio_ms: float
    t_end_bio_ms: float
    params: dict  # GENERIC_TARGETS-like: tau_mem_us, tau_syn_us, v_leak_lsb, v_reset_lsb, v_th_lsb, t_ref_us

    @property
    def n_in(self) -> int:
        return self.w_in_lsb.shape[0]

    @property
    def n(self) -> int:
        return self.w_in_lsb.shape[1]

    @property
    def t_bio_ms(self) -> np.ndarray:
        return self.in_bin * self.dt_bio_ms


def make_case(seed: int, *, n_in: int, n: int, rate_hz: float, t_end_bio_ms: float, dt_bio_ms: float,
              w_mean_lsb: float, w_sd_lsb: float, params: dict) -> Case:
    """Poisson trains on the dt grid (a Bernoulli draw per bin: geometric gaps, so one spike per source and
    bin at most) and N(w_mean_lsb, w_sd_lsb) weights, all from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    n_bins = int(round(t_end_bio_ms / dt_bio_ms))
    p = rate_hz * dt_bio_ms * 1e-3  # spike probability per bin
    width = int(n_bins * p + 10 * math.sqrt(n_bins * p) + 10)  # gaps per source: exhausting them is ~1e-20
    bins = np.cumsum(rng.geometric(p, (n_in, width)), axis=1) - 1
    if (bins[:, -1] < n_bins).any():
        raise RuntimeError("input draw ran out of gaps; raise the width")
    src = np.broadcast_to(np.arange(n_in)[:, None], bins.shape)
    keep = bins < n_bins
    in_bin, in_src = bins[keep], src[keep]
    order = np.lexsort((in_src, in_bin))
    w = rng.normal(w_mean_lsb, w_sd_lsb, (n_in, n))
    return Case(w, in_bin[order].astype(np.int64), in_src[order].astype(np.int64), dt_bio_ms, t_end_bio_ms,
                dict(params))


# -- ours ----------------------------------------------------------------------------------------
def run_ours(case: Case, repeats: int) -> dict:
    """Time simulate_events and simulate_steps on the case: {name: figures, spikes}."""
    from neurosplit.chip import simulate_events, simulate_steps, uniform_params
    from neurosplit.protocol import bio_ms_to_us

    params = uniform_params(case.n, **case.params)
    w = np.zeros((case.n_in + case.n, case.n))  # rows: inputs, then neurons (no recurrent synapses)
    w[:case.n_in] = case.w_in_lsb
    t_us = bio_ms_to_us(case.t_bio_ms)
    smp = np.zeros(t_us.size, np.int64)  # one long trial
    t_end_us = float(bio_ms_to_us(case.t_end_bio_ms))
    dt_us = float(bio_ms_to_us(case.dt_bio_ms))
    n_syn_events = t_us.size * case.n  # each input spike reaches every neuron
    cap = 64 * (t_us.size + case.n)  # the default per-sample cap (64 n + 64) is for short trials

    calls = {
        "events": lambda: simulate_events(w, params, t_us, case.in_src, smp, 1, t_end_us,
                                          max_spikes_per_sample=cap).spikes,
        "steps": lambda: simulate_steps(w, params, t_us, case.in_src, smp, 1, t_end_us, dt_us).spikes,
    }
    out = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()  # the first call compiles (or loads the numba cache)
        first_s = time.perf_counter() - t0
        best, times, spikes = _common.best_of(call, repeats)
        out[name] = {
            "integrator": f"simulate_{name}",
            "bio_s_per_wall_s": case.t_end_bio_ms * 1e-3 / best,
            "synaptic_events_per_s": n_syn_events / best,
            "compile_s": max(first_s - best, 0.0),
            "first_call_s": first_s,
            "run_s": best,
            "run_s_all": times,
            "output_rate_hz": spikes.n_spikes / case.n / (case.t_end_bio_ms * 1e-3),
            "n_output_spikes": spikes.n_spikes,
            "_spikes": (spikes.neuron.astype(np.int64), np.asarray(spikes.t_us)),  # t in us = bio ms
        }
        # simulate_* size their spike buffer as 2 * inputs + 8 n + 64 and, when it overflows, simulate the
        # whole sample again with a doubled buffer: for one long trial that doubles the time. Say so.
        if spikes.n_spikes > 2 * t_us.size + 8 * case.n + 64:
            out[name]["note"] = "output spikes overflowed the first spike buffer: the trial ran twice"
    # Where simulate_events spends its time: the same inputs with the threshold out of reach cost only the
    # deliveries (each input spike updates all n targets exactly); the rest is finding and emitting spikes.
    silent = params._replace(v_th_lsb=np.full(case.n, 1e9))
    call = lambda: simulate_events(w, silent, t_us, case.in_src, smp, 1, t_end_us)  # noqa: E731
    call()
    best, _, _ = _common.best_of(call, repeats)
    out["events"]["delivery_only_run_s"] = best
    out["events"]["delivery_ns_per_synaptic_event"] = best / n_syn_events * 1e9
    return out


# -- Brian2 --------------------------------------------------------------------------------------
def brian2_peer(refresh: bool) -> tuple[_common.Peer, str]:
    """The Brian2 venv (2.11 on a Python >= 3.13 if this machine has one, else 2.9 on ours) and a note."""
    py = _common.find_python(BRIAN2_MIN_PYTHON)
    if py is not None:
        return _common.peer_venv("brian2", "brian2", BRIAN2_VERSION, python=py, refresh=refresh), ""
    note = f"no Python >= {'.'.join(map(str, BRIAN2_MIN_PYTHON))} found: Brian2 {BRIAN2_FALLBACK} instead of {BRIAN2_VERSION}"
    print(f"[peer] {note}", file=sys.stderr)
    return _common.peer_venv("brian2", "brian2", BRIAN2_FALLBACK, refresh=refresh), note


def run_brian2(peer: _common.Peer, case: Case, repeats: int) -> dict:
    """Build and run the case in Brian2's cpp_standalone mode (in the peer venv): figures and spikes."""
    p = case.params
    with tempfile.TemporaryDirectory(prefix="neurosplit_bench_") as tmp:
        in_path, out_path = os.path.join(tmp, "case.npz"), os.path.join(tmp, "out.npz")
        np.savez(in_path, w_lsb=case.w_in_lsb, in_src=case.in_src, in_t_bio_ms=case.t_bio_ms,
                 dt_bio_ms=case.dt_bio_ms, t_end_bio_ms=case.t_end_bio_ms,
                 # 1 us on chip is 1 ms bio (ACCELERATION 1000): the chip's numbers read as bio ms
                 tau_mem_bio_ms=p["tau_mem_us"], tau_syn_bio_ms=p["tau_syn_us"], t_ref_bio_ms=p["t_ref_us"],
                 v_leak_lsb=p["v_leak_lsb"], v_reset_lsb=p["v_reset_lsb"], v_th_lsb=p["v_th_lsb"],
                 repeats=repeats + 1)  # the first run of the binary is the warm-up
        peer.run([str(RUNNER), in_path, out_path], check=True)
        res = np.load(out_path)
        runs, inner = res["run_binary_s"][1:], res["inner_run_s"][1:]
        bio_s, n_syn = case.t_end_bio_ms * 1e-3, case.in_bin.size * case.n
        return {
            "version": str(res["brian2_version"]),
            "bio_s_per_wall_s": bio_s / runs.min(),
            "synaptic_events_per_s": n_syn / runs.min(),
            "compile_s": float(res["compile_s"]),
            "make_s": float(res["make_s"]),
            "run_s": float(runs.min()),
            "run_s_all": runs.tolist(),
            "inner_run_s": float(inner.min()),
            "inner_bio_s_per_wall_s": bio_s / inner.min(),
            "output_rate_hz": res["spike_i"].size / case.n / bio_s,
            "n_output_spikes": int(res["spike_i"].size),
            "tau_syn_bio_ms": float(res["tau_syn_bio_ms"]),
            "compile_flags": str(res["compile_flags"]),
            "state_update": str(res["state_update"]),
            "_spikes": (res["spike_i"].astype(np.int64), res["spike_t_ms"].astype(np.float64)),
        }


# -- comparison ----------------------------------------------------------------------------------
MATCH_BINS = 2
"""Spikes of one neuron at most this many 0.1 ms bins apart count as the same spike in the agreement."""


def _matched(nrn_a, bin_a, nrn_b, bin_b, tol: int) -> int:
    """How many spikes of a have a spike of the same neuron in b at most ``tol`` bins away."""
    if nrn_a.size == 0 or nrn_b.size == 0:
        return 0
    stride = int(max(bin_a.max(), bin_b.max())) + 2 * tol + 2  # keys of different neurons never come close
    ka, kb = nrn_a * stride + bin_a, np.sort(nrn_b * stride + bin_b)
    i = np.searchsorted(kb, ka)
    left = np.abs(ka - kb[np.clip(i - 1, 0, kb.size - 1)])
    right = np.abs(kb[np.clip(i, 0, kb.size - 1)] - ka)
    return int(np.count_nonzero(np.minimum(left, right) <= tol))


def agreement(case: Case, runs: dict[str, dict]) -> dict:
    """Mean rate relative to Brian2's, per-neuron spike-count correlation, and the fraction of spikes (both
    sides) that have a same-neuron partner on the other side within MATCH_BINS bins.

    Exact spike identity is not expected: Brian2 applies an input tagged t_k one step later than ours (its
    state update runs before the synapses), reports a spike at the start of the step whose end crossed, and
    holds V at reset one step shorter; simulate_events is off the grid altogether.
    """
    ref = runs["brian2"]
    ref_nrn = ref["_spikes"][0]
    ref_bin = np.rint(ref["_spikes"][1] / case.dt_bio_ms).astype(np.int64)
    ref_counts = np.bincount(ref_nrn, minlength=case.n)
    out = {}
    for name in ("ours", "ours_steps"):
        nrn, t = runs[name]["_spikes"]
        bins = np.ceil(t / case.dt_bio_ms - 1e-9).astype(np.int64)  # the first grid point at or after t
        counts = np.bincount(nrn, minlength=case.n)
        both = _matched(nrn, bins, ref_nrn, ref_bin, MATCH_BINS) + _matched(ref_nrn, ref_bin, nrn, bins, MATCH_BINS)
        out[name] = {
            "rate_rel_diff": runs[name]["output_rate_hz"] / ref["output_rate_hz"] - 1.0,
            "per_neuron_count_corr": float(np.corrcoef(counts, ref_counts)[0, 1]),
            "matched_spike_fraction": both / max(nrn.size + ref_nrn.size, 1),
        }
    return out


def _fmt_rate(x: float) -> str:
    return f"{x:.3g}"


def print_table(runs: dict, agree: dict) -> None:
    rows = [
        ("neurosplit simulate_events (exact)", runs["ours"]),
        ("neurosplit simulate_steps dt 0.1 ms", runs["ours_steps"]),
        (f"brian2 {runs['brian2']['version']} cpp_standalone dt 0.1 ms", runs["brian2"]),
    ]
    print(f"{'simulator':<42} {'bio s/s':>9} {'syn events/s':>13} {'run s':>8} {'compile s':>10} {'rate Hz':>8}")
    for label, r in rows:
        print(f"{label:<42} {r['bio_s_per_wall_s']:>9.2f} {r['synaptic_events_per_s']:>13.3g} {r['run_s']:>8.3f} "
              f"{r['compile_s']:>10.2f} {r['output_rate_hz']:>8.2f}")
    b = runs["brian2"]
    print(f"{'  brian2 network loop only (_last_run_time)':<42} {b['inner_bio_s_per_wall_s']:>9.2f} "
          f"{b['synaptic_events_per_s'] * b['run_s'] / b['inner_run_s']:>13.3g} {b['inner_run_s']:>8.3f} "
          f"{'':>10} {'':>8}")
    print(f"{REFERENCE['label']:<42} {REFERENCE['bio_s_per_wall_s']:>9.2f} {REFERENCE['synaptic_events_per_s']:>13.3g} "
          f"{'-':>8} {REFERENCE['compile_s']:>10.2f} {'-':>8}")
    print()
    for name in ("ours", "ours_steps"):
        r, a = runs[name], agree[name]
        speed = r["bio_s_per_wall_s"] / b["bio_s_per_wall_s"]
        print(f"{r['integrator']}: {speed:.2f}x Brian2's speed ({'faster' if speed > 1 else 'SLOWER'}); "
              f"mean rate {a['rate_rel_diff']:+.1%} vs Brian2, per-neuron count corr {a['per_neuron_count_corr']:.4f}, "
              f"spikes with a Brian2 partner within {MATCH_BINS * 0.1:g} ms {a['matched_spike_fraction']:.1%}")
    e = runs["ours"]
    print(f"simulate_events split: delivering the input spikes alone (threshold out of reach) takes "
          f"{e['delivery_only_run_s']:.3f} s = {e['delivery_ns_per_synaptic_event']:.1f} ns per synaptic event; "
          f"finding and emitting output spikes the other {max(e['run_s'] - e['delivery_only_run_s'], 0):.3f} s")
    for name in ("ours", "ours_steps"):
        if "note" in runs[name]:
            print(f"note: {runs[name]['integrator']}: {runs[name]['note']}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.core_vs_brian2", description=__doc__.split("\n")[0])
    p.add_argument("--bio-s", type=float, default=20.0, help="biological seconds to simulate")
    p.add_argument("--rate-hz", type=float, default=20.0, help="input rate per source, Hz bio (= kHz on chip)")
    p.add_argument("--w-mean", type=float, default=0.75, help="mean input weight, LSB")
    p.add_argument("--w-sd", type=float, default=2.0, help="standard deviation of the input weights, LSB")
    p.add_argument("--seed", type=int, default=0, help="seed of the input trains and weights")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per simulator after a warm-up (best counts)")
    p.add_argument("--rate-tolerance", type=float, default=0.10, help="allowed relative mean-rate difference")
    p.add_argument("--warm-cache", action="store_true",
                   help="use the project's numba cache (compile_s then measures cache loading)")
    p.add_argument("--refresh-peers", action="store_true", help="remake the Brian2 venv")
    p.add_argument("--json", metavar="PATH", help="write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bio_s <= 0 or args.repeats < 1:
        raise SystemExit(f"--bio-s must be > 0 and --repeats >= 1, got {args.bio_s} and {args.repeats}")
    cache_note = "project numba cache"
    if not args.warm_cache:
        if "numba" in sys.modules:  # NUMBA_CACHE_DIR is read when numba is imported
            cache_note = "numba imported before main(): its cache was used, compile_s may be cache loading"
        else:
            os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="neurosplit_numba_cold_")
            cache_note = "cold numba cache"
    from neurosplit.chip import GENERIC_TARGETS

    peer, peer_note = brian2_peer(args.refresh_peers)
    case = make_case(args.seed, n_in=256, n=512, rate_hz=args.rate_hz, t_end_bio_ms=args.bio_s * 1e3,
                     dt_bio_ms=0.1, w_mean_lsb=args.w_mean, w_sd_lsb=args.w_sd, params=GENERIC_TARGETS)
    load_before = _common.load_average()
    brian2 = run_brian2(peer, case, args.repeats)
    ours = run_ours(case, args.repeats)
    runs = {"ours": ours["events"], "ours_steps": ours["steps"], "brian2": brian2}
    agree = agreement(case, runs)

    versions = {**_common.versions_of_project(), "brian2": brian2["version"] + f" (python {peer_python_version(peer)})"}
    print(_common.header_line(versions, {"ours": 1, "brian2": 1}, {"seed": args.seed},
                              load_before=f"{load_before:.2f}", numba=cache_note))
    print(f"# network: {case.n_in} Poisson inputs at {args.rate_hz:g} Hz bio -> {case.n} LIF, all to all, "
          f"{args.bio_s:g} s bio, {case.in_bin.size} input spikes, {case.in_bin.size * case.n:.3g} synaptic events; "
          f"w ~ N({args.w_mean:g}, {args.w_sd:g}) LSB; GENERIC_TARGETS; best of {args.repeats}"
          + (f"; {peer_note}" if peer_note else ""))
    print(f"# brian2 flags: {brian2['compile_flags']}; tau_syn {brian2['tau_syn_bio_ms']:.8g} ms "
          "(nudged: Brian2's exact solver gives 0/0 for tau_mem == tau_syn with refractoriness)")
    print()
    print_table(runs, agree)

    ok = all(abs(a["rate_rel_diff"]) <= args.rate_tolerance for a in agree.values())
    if not ok:
        print(f"DISAGREE: a mean output rate differs from Brian2's by more than {args.rate_tolerance:.0%}")
    if args.json:
        doc = {
            "benchmark": "core_vs_brian2",
            "header": {"versions": versions, "cpu": _common.cpu_model(), "logical_cpus": os.cpu_count(),
                       "threads": {"ours": 1, "brian2": 1}, "load_before": load_before,
                       "load_after": _common.load_average(), "seed": args.seed, "numba_cache": cache_note},
            "config": {"n_inputs": case.n_in, "n_neurons": case.n, "input_rate_hz_bio": args.rate_hz,
                       "bio_s": args.bio_s, "dt_bio_ms": case.dt_bio_ms, "w_mean_lsb": args.w_mean,
                       "w_sd_lsb": args.w_sd, "params": case.params, "n_input_spikes": int(case.in_bin.size),
                       "repeats": args.repeats, "peer_note": peer_note},
            **{k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in runs.items()},
            "reference": REFERENCE,
            "agreement": {**agree, "rate_tolerance": args.rate_tolerance, "ok": ok},
        }
        print(f"json: {_common.write_json(args.json, doc)}")
    return 0 if ok else 1


def peer_python_version(peer: _common.Peer) -> str:
    out = peer.run(["-c", "import platform; print(platform.python_version())"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
