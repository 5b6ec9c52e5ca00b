"""Vectorisable exp and expm1 over float64 arrays, for numba hot loops (AVX2 without SVML).

numba compiles ``math.exp`` in a loop to a libm call per element (~9 ns; ``math.expm1`` ~19 ns), which LLVM
cannot vectorise. These kernels use only +, *, selects and integer adds/shifts on bit patterns, so LLVM
turns each loop into 4-wide AVX2 code (ymm registers), with no fastmath and no FMA contraction:

1. clamp x (exp: to [-746, 710], expm1: to [-40, 710]); the selects let NaN through;
2. k = rint(x / ln2) by the shifter trick: t = x * (1/ln2) + 1.5 * 2**52 rounds to an integer and
   kf = t - 1.5 * 2**52 is exact;
3. Cody-Waite: r = (x - kf * LN2_HI) - kf * LN2_LO, |r| <= ln2/2 (plus a few ulp); kf * LN2_HI is exact
   (LN2_HI has 32 significant bits, |k| <= 1077); expm1 also keeps c, the rounding error of r (Fast2Sum);
4. expm1(r) - r = r**2 (1/2! + r/3! + ... + r**11/13!): Taylor to degree 13, in Estrin's scheme (Horner
   left the loop latency-bound, ~25 % slower); the truncation error is below 1.2e-17 relative at
   |r| = ln2/2, a tenth of an ulp. The leading r is added by the caller, into an exact term where it can;
5. 2**k is built on the bit pattern: the low bits of the int64 view of t are k (two's complement), so
   ``(bits + 1023) << 52`` is the int64 view of 2**k, valid for -1022 <= k <= 1023. For the final scaling,
   k is split as k1 = floor(k/2) (``bits >> 1``: bits(1.5 * 2**52) is even), k2 = k - k1, both in
   [-539, 512], so both factors are normal: exp(x) = ((1 + (r + poly)) * 2**k1) * 2**k2, the first
   product exact, the second the only rounding of the scaling. Subnormal results are thus rounded
   correctly (no flush to zero) and x > 709.78 overflows to inf, both with no branch;
6. expm1: k <= 0 (k >= -58 after the clamp): ((2**k - 1) + 2**k r) + 2**k tail, the first two terms exact;
   k = 1, 2: (((1 - 2**-k) + r) + tail) * 2**k; k >= 3: (1 + (r + (tail - 2**-min(k, 60)))) * 2**k1 * 2**k2;
   |x| < 2**-54 returns x (so expm1(-0.0) = -0.0 and subnormals stay exact).

The float <-> int64 reinterpretation is a one-instruction LLVM ``bitcast`` (two tiny intrinsics), so each
kernel is one fused, branch-free loop with no scratch memory (both formulas of a select are computed and
one is kept). That beat the chunked variant (float scratch viewed as int64, three loops per 256-element
chunk: ~3.0 against ~2.2 ns per element) and a manually 2- or 4-way interleaved loop (no gain: the fused
loop is throughput-bound once the polynomial is in Estrin form). When x is out, a second copy of the loop
that reads and writes one array runs instead: with two names for one array, LLVM's runtime overlap check
would send every element to its scalar loop (~11 ns per element).

Accuracy (tests/test_vexp.py; also 3e6 random x per range against ``math.exp`` / ``math.expm1``):
max error 1 ulp for both. exp: x in [-745, 709.78] (subnormal results included), ~9.5 % of results
differ from math.exp by 1 ulp. expm1: x in [-745, 709.78], [-45, 45], [-2, 2], [-0.5, 0.5] and
log-uniform tiny |x|; ~10-26 % differ by 1 ulp depending on the range. Special values: exp(nan) = nan,
exp(-inf) = 0, exp(inf) = inf, exp(x < -745.14) = 0; expm1(nan) = nan, expm1(-inf) = -1,
expm1(inf) = inf, expm1(+-0.0) = +-0.0.

Determinism: every element goes through the same IEEE operations in the same order whether it lands
in a vector lane, in the scalar remainder loop or in the in-place loop (no fastmath, so no FMA
contraction or reassociation), so a result depends only on its own x, never on its position, on the
array length or on x being out.

Speed (``python -m benchmarks.vexp_speed``, 2-vCPU AMD EPYC VM with AVX2, shared and noisy: load ~2):
exp_into ~2.0-2.4 ns and expm1_into ~3.1-3.4 ns per element for n = 100 .. 100000 (in place the same),
against ~6-9 ns for numba's ``math.exp`` loop, ~13-20 ns for ``math.expm1`` on x in [-20, 0], and ~6-9 ns
for ``np.exp``. The loops are throughput-bound (~45 vector flops per 4 elements for exp), so the next
gains would come from fewer operations: a minimax polynomial of degree 11 instead of Taylor 13.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp_into", "expm1_into"]

_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + _SHIFT rounds x to an integer held in the low mantissa bits
_INV_LN2 = 1.4426950408889634  # 1 / ln 2
_LN2_HI = 6.93147180369123816490e-01  # fdlibm: ln 2 to 32 significant bits (low 21 bits zero)
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_EXP_LO = -746.0  # exp(x) < 2**-1076 below: rounds to 0 (and k stays >= -1077, both halves normal)
_EXP_HI = 710.0  # exp(x) > DBL_MAX above 709.79: the result overflows to inf, and k stays <= 1024
_EXPM1_LO = -40.0  # expm1(x) rounds to -1.0 below -38.2; keeps k >= -58 so 2**k - 1 is exact to 2**-5
_EXPM1_KNEG_MAX = 60.0  # 2**-k is taken as 2**-60 for k > 60: 1 - 2**-k rounds to 1 either way
_EXPM1_TINY = 2.0 ** -54  # |x| below this: expm1(x) rounds to x

# Taylor coefficients 1/n!, n = 2 .. 13
_C2 = 1.0 / 2.0
_C3 = 1.0 / 6.0
_C4 = 1.0 / 24.0
_C5 = 1.0 / 120.0
_C6 = 1.0 / 720.0
_C7 = 1.0 / 5040.0
_C8 = 1.0 / 40320.0
_C9 = 1.0 / 362880.0
_C10 = 1.0 / 3628800.0
_C11 = 1.0 / 39916800.0
_C12 = 1.0 / 479001600.0
_C13 = 1.0 / 6227020800.0


@intrinsic
def _bits(typingctx, x):
    """The int64 whose bits are those of the float64 x (no conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose bits are those of the int64 i."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(inline="always")
def _pow2(t):
    """2**k for t = k + _SHIFT (k integer, -1022 <= k <= 1023): exponent field k + 1023, mantissa 0."""
    return _from_bits((_bits(t) + 1023) << 52)


@njit(inline="always")
def _pow2_halves(t):
    """(2**k1, 2**k2) with k1 = floor(k/2), k2 = k - k1, for t = k + _SHIFT, -1077 <= k <= 1024: both normal.

    bits(t) = bits(_SHIFT) + k with bits(_SHIFT) even, so bits(t) >> 1 holds floor(k/2) in its low bits;
    only the low 12 bits survive the << 52, so the high bits (and the sign of the shift) do not matter."""
    b = _bits(t)
    h = b >> 1
    return _from_bits((h + 1023) << 52), _from_bits(((b - h) + 1023) << 52)


@njit(inline="always")
def _reduce(xi):
    """(t, kf, r, c) for x = k ln2 + r + c: t = k + _SHIFT, kf = k as float, |r| <= ln2/2 (+ a few ulp), c the
    rounding error of r (|c| <= ulp(r)/2, plus the tiny error of kf * _LN2_LO)."""
    t = xi * _INV_LN2 + _SHIFT
    kf = t - _SHIFT
    hi = xi - kf * _LN2_HI  # exact
    lo = kf * _LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # Fast2Sum: hi - r is exact, so c recovers what r lost
    return t, kf, r, c


@njit(inline="always")
def _expm1_poly(r):
    """expm1(r) - r for |r| <= ln2/2 (+ a few ulp): r**2 (1/2! + r/3! + ... + r**11/13!), Taylor to degree
    13 in Estrin's scheme (short dependency chains: Horner left the loop latency-bound, ~25 % slower).
    Adding r is left to the caller, so that r meets the caller's exact leading term before any rounding."""
    r2 = r * r
    r4 = r2 * r2
    h = ((_C2 + r * _C3) + r2 * (_C4 + r * _C5)) + r4 * ((_C6 + r * _C7) + r2 * (_C8 + r * _C9))
    h = h + (r4 * r4) * ((_C10 + r * _C11) + r2 * (_C12 + r * _C13))
    return r2 * h


@njit(inline="always")
def _exp1(x0):
    """exp(x0), one element (the loop body of exp_into)."""
    xi = _EXP_LO if x0 < _EXP_LO else x0  # selects, not min/max: a NaN passes through both
    xi = _EXP_HI if xi > _EXP_HI else xi
    t, kf, r, c = _reduce(xi)  # c (the rounding error of r) is left out: measured, it changes no max error
    p = 1.0 + (r + _expm1_poly(r))
    s1, s2 = _pow2_halves(t)
    return (p * s1) * s2  # p * s1 is exact (normal), so the result rounds once, also when subnormal


@njit(inline="always")
def _expm1_1(x0):
    """expm1(x0), one element (the loop body of expm1_into)."""
    xi = _EXPM1_LO if x0 < _EXPM1_LO else x0
    xi = _EXP_HI if xi > _EXP_HI else xi
    t, kf, r, c = _reduce(xi)
    tail = _expm1_poly(r) + (c + c * r)  # expm1(r + c) - r, c exp(r) to first order
    # k <= 0 (k >= -58): ((2**k - 1) + 2**k r) + 2**k tail; 2**k - 1 and 2**k r are exact, so the
    # leading sum rounds once and no error of r is magnified by cancellation; k = 0 gives r + tail
    sk = _pow2(t)  # garbage for k > 1023, but then only the k > 0 formula is kept
    neg = ((sk - 1.0) + sk * r) + sk * tail
    # k > 0: m 2**k with m = expm1(r) + 1 - 2**-k, the scaling split in two normal factors as in exp_into.
    # k = 1, 2: m = ((1 - 2**-k) + r) + tail (1 - 2**-k exact; m may be as small as 0.2, so r must not be
    # rounded into an em first). k >= 3: m = 1 + (r + (tail - 2**-k)), one rounding at m's scale (m > 0.58);
    # the first form loses up to 2 ulp there once 1 - 2**-k is inexact (k > 53).
    kn = _EXPM1_KNEG_MAX if kf > _EXPM1_KNEG_MAX else kf
    u = _pow2(_SHIFT - kn)
    m = ((1.0 - u) + r) + tail if kf <= 2.0 else 1.0 + (r + (tail - u))
    s1, s2 = _pow2_halves(t)
    pos = (m * s1) * s2
    res = pos if kf > 0.0 else neg
    return x0 if abs(x0) < _EXPM1_TINY else res


@njit(cache=True, nogil=True)
def exp_into(x, out):
    """out[i] = exp(x[i]) for every i; max error 1 ulp against ``math.exp`` (measured, module docstring).

    x: float64[n], contiguous, any values (nan -> nan, -inf -> 0, inf -> inf, x < -745.2 -> 0, subnormal
    results rounded correctly, x > 709.78 -> inf). out: float64[n], contiguous, written; may be x itself
    (in place), but must not partially overlap it. Branch-free loops that LLVM vectorises (4 lanes on AVX2);
    the result for an element does not depend on its position or on n. No argument checks (a kernel).
    """
    if x.ctypes.data == out.ctypes.data:
        # in place: a loop over one array, else LLVM's runtime overlap check sends x is out to its scalar loop
        for i in range(out.shape[0]):
            out[i] = _exp1(out[i])
    else:
        for i in range(x.shape[0]):
            out[i] = _exp1(x[i])


@njit(cache=True, nogil=True)
def expm1_into(x, out):
    """out[i] = expm1(x[i]) = exp(x[i]) - 1 for every i, relative error small also for tiny |x|.

    Max error 1 ulp against ``math.expm1`` (measured, module docstring). x: float64[n], contiguous, any
    values (nan -> nan, -inf -> -1, inf -> inf, +-0.0 -> +-0.0, |x| < 2**-54 -> x). out: float64[n],
    contiguous, written; may be x itself, must not partially overlap it. Branch-free vectorised loops; the
    result for an element does not depend on its position or on n. No argument checks (a kernel).
    """
    if x.ctypes.data == out.ctypes.data:
        for i in range(out.shape[0]):
            out[i] = _expm1_1(out[i])
    else:
        for i in range(x.shape[0]):
            out[i] = _expm1_1(x[i])
