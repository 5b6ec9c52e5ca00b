"""Counter-based standard normals: one value per (seed, run, sample, circuit), computed on its own.

Trial-to-trial threshold noise must not depend on which other circuits a network uses, on how a
run is cut into chunks, or on threads. A sequential generator can only give that by drawing every
circuit of every sample in order (what ``default_rng([seed, run]).standard_normal((n, 512))`` did,
~10 us a sample). Here each value has its own stream instead, so only the values asked for are
computed (~5 ns each):

- key of a run: ``k_run = mix(mix(seed ^ D) ^ run_id)`` (D a domain constant), then
  ``k = mix(mix(k_run ^ sample) ^ circuit)``;
- the value's stream of 64-bit words is splitmix64 seeded with k: word j = ``mix(k + (j + 1) G)``,
  G = 0x9E3779B97F4A7C15, mix = splitmix64's finaliser (a bijection of 64-bit words);
- the words feed an exact 256-layer ziggurat (Marsaglia & Tsang 2000, in numpy's 64-bit layout:
  bits 0-7 pick the layer, bit 8 the sign, bits 12-63 the 52-bit abscissa; the base layer's tail beyond
  r = 3.6541528853610088 is sampled by Marsaglia's exponential rejection). ~99 % of values take
  one word; the wedge and the tail use more words of the same stream.

The ziggurat is exact whatever rounding its tables carry: a point is accepted under the density
itself (in the wedges and the tail) or inside a rectangle that lies under it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ZIGGURAT_R", "run_key", "hashed_normals_into"]

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_DOMAIN = 0x6A09E667F3BCC909  # fractional bits of sqrt(2): separates these streams from other uses of mix

ZIGGURAT_R = 3.6541528853610088
"""Start of the ziggurat's tail (256 layers, Marsaglia & Tsang 2000)."""
_ZIGGURAT_V = 4.92867323399e-3  # area of each layer


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ki uint64[256], wi float64[256], fi float64[256]: layer i accepts a 52-bit abscissa a at once
    when a < ki[i] (x = a * wi[i] lies inside the rectangle under the density); fi[i] = exp(-x_i^2 / 2).
    Index 0 is the base layer (rectangle plus tail), 255 the widest rectangle (x = r), 1 the top."""
    m = float(1 << 52)
    ki, wi, fi = np.zeros(256, np.uint64), np.zeros(256), np.zeros(256)
    dn = tn = ZIGGURAT_R
    q = _ZIGGURAT_V / np.exp(-0.5 * dn * dn)
    ki[0] = int(dn / q * m)
    wi[0], wi[255] = q / m, dn / m
    fi[0], fi[255] = 1.0, np.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = np.sqrt(-2.0 * np.log(_ZIGGURAT_V / dn + np.exp(-0.5 * dn * dn)))
        ki[i + 1] = int(dn / tn * m)
        tn = dn
        fi[i] = np.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


_KI, _WI, _FI = _tables()


def _mix_py(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def run_key(seed: int, run_id: int) -> int:
    """The 64-bit key of run ``run_id`` under ``seed`` (both ints in [0, 2**64))."""
    return _mix_py(_mix_py(seed ^ _DOMAIN) ^ run_id)


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _unit(word):
    """A double in [0, 1) from a word's top 53 bits."""
    return np.float64(word >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True, inline="always")
def _layer(c):
    """One ziggurat try with word mix(c): (accepted, layer, x). Bits 0-7 pick the layer, bit 8 the
    sign, bits 12-63 the 52-bit abscissa; the sign is a multiplication (a branch on a random bit
    would be mispredicted every other time)."""
    r = _mix(c)
    idx = np.int64(r & np.uint64(0xFF))
    rabs = np.int64(r >> np.uint64(12))
    sign = 1.0 - 2.0 * np.float64((r >> np.uint64(8)) & np.uint64(1))
    return rabs < np.int64(_KI[idx]), idx, np.float64(rabs) * (_WI[idx] * sign)


@njit(cache=True, nogil=True)
def _normal_rare(c, idx, x):
    """The rest of a try that fell outside its rectangle (~1.5 % of values), and the tries after it:
    the word counter c is where the first try left it."""
    gamma = np.uint64(_GAMMA)
    while True:
        if idx == 0:  # the tail beyond r: Marsaglia's exponential rejection
            while True:
                c += gamma
                xx = -np.log1p(-_unit(_mix(c))) / ZIGGURAT_R
                c += gamma
                yy = -np.log1p(-_unit(_mix(c)))
                if yy + yy > xx * xx:
                    return np.copysign(ZIGGURAT_R + xx, x)
        c += gamma  # the wedge between the rectangle and the density
        if (_FI[idx - 1] - _FI[idx]) * _unit(_mix(c)) + _FI[idx] < np.exp(-0.5 * x * x):
            return x
        c += gamma
        inside, idx, x = _layer(c)
        if inside:
            return x


@njit(cache=True, nogil=True, inline="always")
def _normal(k):
    """The standard normal of the stream keyed by k (uint64)."""
    c = k + np.uint64(_GAMMA)
    inside, idx, x = _layer(c)
    if inside:
        return x  # inside the rectangle under the density
    return _normal_rare(c, idx, x)


@njit(cache=True, nogil=True)
def _normals_into(k_run, first_sample, circuits, scale, out):
    for s in range(out.shape[0]):
        k_s = _mix(k_run ^ np.uint64(first_sample + s))
        for j in range(circuits.shape[0]):
            out[s, j] = scale * _normal(_mix(k_s ^ np.uint64(circuits[j])))


def hashed_normals_into(k_run: int, first_sample: int, circuits: np.ndarray, scale: float, out: np.ndarray) -> None:
    """out[s, j] = scale * the standard normal of (k_run, sample first_sample + s, circuit circuits[j]).

    k_run: run_key(...); first_sample: int >= 0; circuits: int64[n], each >= 0; out: float64[m, n],
    C-contiguous, written in place. Callers check the arguments (threshold_jitter does)."""
    _normals_into(np.uint64(k_run), np.int64(first_sample), circuits, float(scale), out)
