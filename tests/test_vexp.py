"""chip._vexp: exp_into / expm1_into against math.exp / math.expm1 (the independent reference: libm), in ulp.

Also: special values, results that do not depend on an element's position or the array length (vector
lanes vs the scalar remainder), x is out (in place), and that the loops compile to AVX2 code.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from neurosplit.chip._vexp import exp_into, expm1_into

LN2 = math.log(2.0)
MAX_ULP = 1  # what the module docstring states; the brief allows 2


def _ref(fn, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i, v in enumerate(x.tolist()):
        try:
            out[i] = fn(v)
        except OverflowError:
            out[i] = math.inf
    return out


def _ulp_diff(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units in the last place: distance of the two in the ordered int64 line of doubles."""
    def ordered(a):
        i = a.view(np.int64)
        return np.where(i < 0, np.int64(-(2**63)) - i, i)
    both_nan = np.isnan(got) & np.isnan(want)
    d = np.abs(ordered(got) - ordered(want))
    return np.where(both_nan, 0, d)


def _run(kernel, x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, -123.0)
    kernel(x, out)
    return out


def _edge_values() -> np.ndarray:
    k = np.arange(-1080, 1025, dtype=np.float64)
    mult = k * LN2
    half = (k + 0.5) * LN2  # where rint(x / ln2) changes: r = +-ln2/2
    base = np.concatenate([mult, half, [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300,
                                        1e-17, -1e-17, 2.0**-54, -(2.0**-54), 2.0**-53, 1e-10, -1e-10,
                                        LN2 / 2, -LN2 / 2, -708.0, -708.4, -709.0, -744.4, -745.0, -745.1332,
                                        -745.2, -746.0, -1000.0, -1e300, 709.0, 709.78, 709.7827128933840,
                                        709.79, 710.0, 1e300, -37.0, -38.5, -40.0, -41.0, 40.0, 60.0]]),
    base = base[0]
    return np.concatenate([base, np.nextafter(base, -np.inf), np.nextafter(base, np.inf)])


@pytest.mark.parametrize("lo, hi", [(-745.0, 0.0), (0.0, 709.78), (-1.0, 1.0), (-760.0, -700.0)])
def test_exp_ulp_random(lo, hi):
    x = np.random.default_rng([1, int(lo + 1000), int(hi + 1000)]).uniform(lo, hi, 200_000)
    err = _ulp_diff(_run(exp_into, x), _ref(math.exp, x))
    assert err.max() <= MAX_ULP, f"x = {x[err.argmax()]!r}: {err.max()} ulp"


@pytest.mark.parametrize("lo, hi", [(-745.0, 0.0), (0.0, 709.78), (-1.0, 1.0), (-0.4, 0.4), (-45.0, 45.0), (0.3, 4.0), (36.0, 42.0)])
def test_expm1_ulp_random(lo, hi):
    x = np.random.default_rng([2, int(lo * 10 + 10000), int(hi * 10 + 10000)]).uniform(lo, hi, 200_000)
    err = _ulp_diff(_run(expm1_into, x), _ref(math.expm1, x))
    assert err.max() <= MAX_ULP, f"x = {x[err.argmax()]!r}: {err.max()} ulp"


def test_expm1_tiny_relative_error():
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(math.log(1e-320), math.log(1.0), 100_000)) * rng.choice([-1.0, 1.0], 100_000)
    err = _ulp_diff(_run(expm1_into, x), _ref(math.expm1, x))
    assert err.max() <= MAX_ULP, f"x = {x[err.argmax()]!r}: {err.max()} ulp"


@pytest.mark.parametrize("kernel, fn", [(exp_into, math.exp), (expm1_into, math.expm1)])
def test_edge_values(kernel, fn):
    x = _edge_values()
    err = _ulp_diff(_run(kernel, x), _ref(fn, x))
    assert err.max() <= MAX_ULP, f"x = {x[err.argmax()]!r}: {err.max()} ulp"


def test_special_values():
    x = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, -745.2, -1e308, 709.8])
    e, m = _run(exp_into, x), _run(expm1_into, x)
    assert np.isnan(e[0]) and np.isnan(m[0])
    assert e[1:3].tolist() == [0.0, math.inf] and m[1:3].tolist() == [-1.0, math.inf]
    assert e[3] == 1.0 and e[4] == 1.0 and e[5] == 0.0 and e[6] == 0.0 and e[7] == math.inf
    assert m[3] == 0.0 and math.copysign(1.0, m[3]) == 1.0 and m[4] == 0.0 and math.copysign(1.0, m[4]) == -1.0
    assert m[5] == -1.0 and m[6] == -1.0 and m[7] == math.inf
    assert e[5:7].view(np.int64).tolist() == [0, 0]  # +0.0, not a stray subnormal
    # subnormal results are rounded, not flushed
    assert _run(exp_into, np.array([-744.0]))[0] == math.exp(-744.0) > 0.0


@pytest.mark.parametrize("kernel", [exp_into, expm1_into])
def test_result_does_not_depend_on_position_or_length(kernel):
    rng = np.random.default_rng(4)
    vals = np.concatenate([rng.uniform(-745.0, 0.0, 40), rng.uniform(-1.0, 1.0, 20), rng.uniform(0.0, 709.0, 10),
                           _edge_values()[::37]])
    alone = np.array([_run(kernel, np.array([v]))[0] for v in vals])  # length 1: the scalar remainder loop
    whole = _run(kernel, vals)
    assert np.array_equal(whole.view(np.int64), alone.view(np.int64))
    perm = rng.permutation(vals.size)
    assert np.array_equal(_run(kernel, vals[perm]).view(np.int64), alone[perm].view(np.int64))
    big = np.empty(vals.size + 8)
    for offset in range(8):  # misaligned starts: other elements land in vector lanes
        big[offset:offset + vals.size] = vals
        view = big[offset:offset + vals.size]
        assert np.array_equal(_run(kernel, view).view(np.int64), alone.view(np.int64)), offset
    for n in range(1, 18):
        for start in (0, 3, vals.size - n):
            got = _run(kernel, np.ascontiguousarray(vals[start:start + n]))
            assert np.array_equal(got.view(np.int64), alone[start:start + n].view(np.int64)), (n, start)


@pytest.mark.parametrize("kernel", [exp_into, expm1_into])
@pytest.mark.parametrize("n", [1, 5, 8, 1001])
def test_in_place_matches_separate_output(kernel, n):
    x = np.random.default_rng([5, n]).uniform(-750.0, 720.0, n)
    want = _run(kernel, x)
    a = x.copy()
    kernel(a, a)
    assert np.array_equal(a.view(np.int64), want.view(np.int64))


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="vectorisation check is for AVX2 machines")
@pytest.mark.parametrize("kernel", [exp_into, expm1_into])
def test_loops_vectorise_to_ymm(kernel):
    from numba import njit

    fresh = njit(nogil=True)(kernel.py_func)  # cached code cannot be inspected; this compiles the same source
    x = np.zeros(4)
    fresh(x, x.copy())
    llvm_ir, asm = fresh.inspect_llvm(fresh.signatures[0]), fresh.inspect_asm(fresh.signatures[0])
    assert len(re.findall(r"^vector\.body\d*:", llvm_ir, re.M)) >= 2, "the in-place loop and the two-array loop must both vectorise"
    assert re.search(r"vmulpd\s+%ymm", asm), "no 4-wide multiplies in the assembly"
    assert not re.search(r"call.*exp", asm), "a libm exp call survived"
