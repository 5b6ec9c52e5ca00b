"""ns per element of our vectorised exp / expm1 (chip._vexp) beside numpy and a numba loop over math.exp.

Columns, for each array size n (x uniform in [lo, 0], default [-700, 0]; -745 would add subnormal results,
which cost every implementation extra):

- ``exp_into`` / ``expm1_into``: our kernels, called n_calls times from inside a numba loop (how the LIF
  integrator uses them: no Python dispatch per call), out a separate array;
- ``... in place``: the same with out = x (the loop refills x from a copy first; that copy is timed apart and
  subtracted);
- ``np.exp`` / ``np.expm1`` with ``out=``: called from Python, so each call includes numpy's ufunc overhead
  (~0.3-1 us, which dominates at n = 100);
- ``numba math.exp`` / ``math.expm1``: a plain ``@njit`` loop, ``out[i] = math.exp(x[i])`` (a libm call per
  element; no SVML here, so it does not vectorise).

Each figure is the best of ``--repeats`` rounds, each round timed with ``time.perf_counter`` around enough
calls to last about ``--round-ms``. Compile time (or the numba cache load) is excluded by a warm-up call.

    python -m benchmarks.vexp_speed
    python -m benchmarks.vexp_speed --sizes 100 1000 100000 --json /tmp/vexp.json
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from numba import njit

from neurosplit.chip._vexp import exp_into, expm1_into

from ._common import header_line, versions_of_project, write_json

SEED = 7


@njit(nogil=True)
def _math_exp(x, out):
    for i in range(x.shape[0]):
        out[i] = math.exp(x[i])


@njit(nogil=True)
def _math_expm1(x, out):
    for i in range(x.shape[0]):
        out[i] = math.expm1(x[i])


@njit(nogil=True)
def _repeat(kernel, x, out, n_calls):
    for _ in range(n_calls):
        kernel(x, out)


@njit(nogil=True)
def _repeat_in_place(kernel, x, buf, n_calls):
    for _ in range(n_calls):
        buf[:] = x
        kernel(buf, buf)


@njit(nogil=True)
def _repeat_copy(x, buf, n_calls):
    for _ in range(n_calls):
        buf[:] = x


def _per_call_s(run, n_calls: int, repeats: int) -> float:
    """Best over ``repeats`` of (wall seconds of ``run(n_calls)``) / n_calls."""
    run(1)  # warm up: compile or load the cache, fault the pages in
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(n_calls)
        best = min(best, (time.perf_counter() - t0) / n_calls)
    return best


def measure(n: int, lo: float, repeats: int, round_ms: float) -> dict[str, float]:
    """ns per element of every column for arrays of n elements."""
    x = np.random.default_rng([SEED, n]).uniform(lo, 0.0, n)
    out, buf = np.empty_like(x), np.empty_like(x)
    n_calls = max(1, int(round_ms * 1e-3 / (n * 3e-9)))  # ~round_ms at ~3 ns per element

    def numba_loop(kernel):
        return lambda k: _repeat(kernel, x, out, k)

    def python_loop(ufunc):
        def run(k):
            for _ in range(k):
                ufunc(x, out=out)
        return run

    copy_s = _per_call_s(lambda k: _repeat_copy(x, buf, k), n_calls, repeats)
    cols = {
        "exp_into": _per_call_s(numba_loop(exp_into), n_calls, repeats),
        "exp_into in place": _per_call_s(lambda k: _repeat_in_place(exp_into, x, buf, k), n_calls, repeats) - copy_s,
        "np.exp": _per_call_s(python_loop(np.exp), n_calls, repeats),
        "numba math.exp": _per_call_s(numba_loop(_math_exp), n_calls, repeats),
        "expm1_into": _per_call_s(numba_loop(expm1_into), n_calls, repeats),
        "expm1_into in place": _per_call_s(lambda k: _repeat_in_place(expm1_into, x, buf, k), n_calls, repeats)
        - copy_s,
        "np.expm1": _per_call_s(python_loop(np.expm1), n_calls, repeats),
        "numba math.expm1": _per_call_s(numba_loop(_math_expm1), n_calls, repeats),
    }
    return {k: v / n * 1e9 for k, v in cols.items()}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 100_000])
    p.add_argument("--lo", type=float, default=-700.0, help="x is uniform in [lo, 0]")
    p.add_argument("--repeats", type=int, default=15, help="rounds per figure; the best counts")
    p.add_argument("--round-ms", type=float, default=20.0, help="about this long per round")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    rows = {n: measure(n, args.lo, args.repeats, args.round_ms) for n in args.sizes}
    print(header_line(versions_of_project(), {"numba": 1, "numpy": 1}, {"data": SEED}, x=f"U[{args.lo:g}, 0]"))
    names = list(next(iter(rows.values())))
    print("ns per element (best of rounds; ours and numba math.* timed inside a numba loop, numpy from Python)")
    print(f"{'n':>8} " + " ".join(f"{name:>{max(len(name), 8)}}" for name in names))
    for n, row in rows.items():
        print(f"{n:>8} " + " ".join(f"{row[name]:>{max(len(name), 8)}.2f}" for name in names))
    result = {"ns_per_element": {str(n): row for n, row in rows.items()}, "args": vars(args),
              "versions": versions_of_project()}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
