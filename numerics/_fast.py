"""Branch-free kernels for the hot path: float32 input, nearest-even, and table decoding.

They compute exactly what the general kernels compute (tests compare the two bit for bit), but
in straight-line integer code that LLVM can vectorize, so encoding runs at memory speed. The
float32 kernels stay in 32-bit lanes (numba widens integer arithmetic to 64 bits unless each
step is cast back), twice the lanes of int64 code.
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np

_fast = nb.njit(cache=True, nogil=True, parallel=True, error_model="numpy", boundscheck=False)
_U32 = np.uint32


@nb.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _minifloat_code(u, frac_bits, in_bias, m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate, no_negzero,
                    no_zero, signed):  # type: ignore[no-untyped-def]  # fmt: skip
    """One IEEE float bit pattern (float32: frac_bits 23, bias 127; float64: 52, 1023) to a
    minifloat code (man_bits m <= frac_bits - 1), round to nearest even, without branches."""
    sign_bit = frac_bits + (8 if frac_bits == 23 else 11)
    inf_bits = ((np.int64(1) << (sign_bit - frac_bits)) - 1) << frac_bits
    neg = ((u >> sign_bit) & 1) != 0
    a = u & ((np.int64(1) << sign_bit) - 1)
    biased = a >> frac_bits
    sig = (a & ((np.int64(1) << frac_bits) - 1)) | (np.int64(biased != 0) << frac_bits)
    e = max(biased, 1) - in_bias
    top = max(e, emin)
    s = min(frac_bits - m + top - e, 62)
    n = sig >> s
    rem = sig & ((np.int64(1) << s) - 1)
    half = np.int64(1) << (s - 1)
    n += np.int64((rem > half) | ((rem == half) & ((n & 1) == 1)))
    mag = n + ((top - emin - off) << m)
    mag = 0 if (no_zero & (e < emin)) else mag
    over = mag > max_mag
    mag = (max_mag if (saturate | (inf_mag < 0)) else inf_mag) if over else mag
    is_zero = a == 0
    to_nan = (over & ~saturate & (inf_mag < 0)) | (a > inf_bits)
    to_nan = to_nan | (no_zero & is_zero & ~saturate) | (neg & ~signed & ~is_zero & ~saturate)
    mag = 0 if ((no_zero & is_zero) | (neg & ~signed)) else mag
    # -0 without a zero code becomes +min, as round_one gives it
    sign = np.int64(neg & signed & ~(no_negzero & (mag == 0)) & ~(no_zero & is_zero)) << sign_shift
    return nan_code if to_nan else (mag | sign)


@nb.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _minifloat_code_f32(u, m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate, no_negzero, no_zero, signed,
                        magic):  # type: ignore[no-untyped-def]  # fmt: skip
    """One float32 bit pattern to a minifloat code as `_minifloat_code` gives it, in 32-bit lanes.

    Normal binades round the bit pattern itself (rebased so that 2**emin has exponent field
    1 - off; a carry out of the mantissa moves to the next exponent by itself). Below 2**emin
    the FPU rounds: |x| + magic, magic = 2**(emin - m + 23) whose ulp is the format's quantum,
    is |x| rounded to nearest even in units of that quantum above magic's bit pattern. Callers
    use it only where emin - m >= -125, so float32 subnormal inputs lie below half the format's
    quantum and round to 0 even with denormals-are-zero set.
    """
    a = _U32(u & _U32(0x7FFFFFFF))
    neg = (u >> _U32(31)) != 0
    shift = 23 - m
    rebased = _U32(a - _U32((126 + emin + off) << 23))
    lsb = _U32(_U32(rebased >> _U32(shift)) & _U32(1))
    normal = _U32(_U32(_U32(rebased + _U32((1 << (shift - 1)) - 1)) + lsb) >> _U32(shift))
    if off == 0:  # subnormals: the FPU's nearest even in units of 2**(emin - m)
        summed = np.float32(a.view(np.float32) + magic)  # a: |x|
        tiny = _U32(summed.view(_U32) - np.float32(magic).view(_U32))
    else:  # no subnormals and no zero: the smallest value is the nearest
        tiny = _U32(0)
    mag = tiny if a < _U32((127 + emin) << 23) else normal
    over = mag > max_mag
    mag = _U32(max_mag if (saturate | (inf_mag < 0)) else inf_mag) if over else mag
    is_zero = a == 0
    to_nan = (over & ~saturate & (inf_mag < 0)) | (a > _U32(0x7F800000))
    to_nan = to_nan | (no_zero & is_zero & ~saturate) | (neg & ~signed & ~is_zero & ~saturate)
    mag = _U32(0) if ((no_zero & is_zero) | (neg & ~signed)) else mag
    sign = _U32(_U32(neg & signed & ~(no_negzero & (mag == 0)) & ~(no_zero & is_zero)) << _U32(sign_shift))
    return _U32(nan_code) if to_nan else _U32(mag | sign)


@_fast
def minifloat_from_f32_rne(bits, out, m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate, no_negzero,
                           no_zero, signed, magic):  # type: ignore[no-untyped-def]  # fmt: skip
    """float32 bit patterns to minifloat codes in 32-bit lanes, the format's parameters passed at run time."""
    for i in nb.prange(bits.size):
        out[i] = _minifloat_code_f32(bits[i], m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate,
                                     no_negzero, no_zero, signed, magic)  # fmt: skip


@_fast
def minifloat_from_float_rne(bits, frac_bits, in_bias, out, m, emin, off, max_mag, inf_mag, nan_code, sign_shift,
                             saturate, no_negzero, no_zero, signed):  # type: ignore[no-untyped-def]  # fmt: skip
    """Float bit patterns to minifloat codes, the format's parameters passed at run time."""
    for i in nb.prange(bits.size):
        out[i] = _minifloat_code(np.int64(bits[i]), frac_bits, in_bias, m, emin, off, max_mag, inf_mag, nan_code,
                                 sign_shift, saturate, no_negzero, no_zero, signed)  # fmt: skip


@_fast
def posit_from_f32_rne(bits, out, n, es):  # type: ignore[no-untyped-def]
    """float32 bit patterns to posit<n, es> codes, nearest even on the bit string."""
    mask = (np.int64(1) << n) - 1
    max_field = (np.int64(1) << (n - 1)) - 1
    max_scale = (n - 2) << es
    tl = es + 23
    for i in nb.prange(bits.size):
        u = np.int64(bits[i])
        neg = (u >> 31) != 0
        a = u & 0x7FFFFFFF
        biased = a >> 23
        frac = a & 0x7FFFFF
        # float32 subnormals are far below every posit<=32 minpos except posit32 with es >= 3;
        # those, like all values below minpos, become minpos.
        e = biased - 127
        ec = min(max(e, -max_scale), max_scale - 1)
        regime = ec >> es
        expo = ec & ((1 << es) - 1)
        rl = regime + 2 if regime >= 0 else 1 - regime
        pattern = (((np.int64(1) << (regime + 1)) - 1) << 1) if regime >= 0 else np.int64(1)
        avail = n - 1 - rl
        bit_string = (((pattern << es) | expo) << 23) | frac
        bit_string <<= max(avail - tl, 0)  # room to spare (wide posits): exact, no rounding
        s = max(tl - avail, 0)
        kept = bit_string >> s
        rem = bit_string & ((np.int64(1) << s) - 1)
        half = (np.int64(1) << s) >> 1
        field = kept + np.int64((s > 0) & ((rem > half) | ((rem == half) & ((kept & 1) == 1))))
        field = min(max(field, np.int64(1)), max_field)
        field = max_field if e >= max_scale else field
        field = np.int64(1) if e < -max_scale else field
        code = ((-field) & mask) if neg else field
        code = 0 if a == 0 else code
        out[i] = (np.int64(1) << (n - 1)) if biased == 255 else code


@_fast
def gather(table, codes, out):  # type: ignore[no-untyped-def]
    """out[i] = table[codes[i]], in parallel (codes are range-checked by the caller)."""
    for i in nb.prange(codes.size):
        out[i] = table[codes[i]]


@_fast
def int_from_scaled_rne(x, scale, inner, lo, hi, width, out):  # type: ignore[no-untyped-def]
    """out[i] = two's complement code of clamp(rint(x[i] / scale[i // inner]), lo, hi)."""
    mask = (np.int64(1) << width) - 1
    for i in nb.prange(x.size):
        q = np.rint(np.float64(x[i]) / scale[i // inner])
        q = min(max(q, np.float64(lo)), np.float64(hi))
        out[i] = np.int64(q) & mask


@_fast
def truncated_f32_rne(bits, out, shift, max_mag, nan_code, saturate):  # type: ignore[no-untyped-def]
    """Formats that are float32 with the low `shift` mantissa bits cut off (bf16): nearest even
    on the bit pattern itself, where a carry into the exponent is exactly IEEE overflow to Inf."""
    for i in nb.prange(bits.size):
        u = np.int64(bits[i])
        a = u & 0x7FFFFFFF
        mag = (a + ((np.int64(1) << (shift - 1)) - 1) + ((a >> shift) & 1)) >> shift
        mag = min(mag, max_mag) if saturate else mag
        out[i] = nan_code if a > 0x7F800000 else (mag | ((u >> 31) << (31 - shift)))


@_fast
def truncated_f32_decode(codes, out, shift):  # type: ignore[no-untyped-def]
    """Codes of a float32 with the low `shift` mantissa bits cut off (bf16) to float64: shift them
    back into place, read the float32, widen it (exact); every NaN becomes the one quiet NaN."""
    for i in nb.prange(codes.size):
        value = np.float64(_U32(_U32(codes[i]) << _U32(shift)).view(np.float32))
        out[i] = np.nan if np.isnan(value) else value


@_fast
def minifloat_decode(codes, out, man_bits, exp_bits, pow2, specials, subnormals, signed, sign_shift, nan_code):  # type: ignore[no-untyped-def]  # fmt: skip
    """Minifloat codes to float64 with a tiny per-exponent table of powers of two (no big table)."""
    man_mask = (np.int64(1) << man_bits) - 1
    mag_mask = (np.int64(1) << (exp_bits + man_bits)) - 1
    e_all = (np.int64(1) << exp_bits) - 1
    for i in nb.prange(codes.size):
        c = np.int64(codes[i])
        mag = c & mag_mask
        biased = mag >> man_bits
        mant = mag & man_mask
        hidden = np.int64((biased != 0) | (subnormals == 0)) << man_bits
        v = np.float64(mant | hidden) * pow2[biased]
        ieee_top = (specials == 0) & (biased == e_all)
        v = np.inf if ieee_top else v
        is_nan = (ieee_top & (mant != 0)) | ((specials == 1) & (mag == mag_mask)) | ((specials == 2) & (c == nan_code))
        neg = signed & (((c >> sign_shift) & 1) == 1)
        v = -v if neg else v
        out[i] = np.nan if is_nan else v


@_fast
def int_dequantize(codes, scale, zero_point, inner, width, signed, out):  # type: ignore[no-untyped-def]
    """out[i] = (integer value of codes[i] - zero_point[j]) * scale[j], j = i // inner."""
    wrap = np.int64(1) << width
    half = np.int64(1) << (width - 1)
    for i in nb.prange(codes.size):
        c = np.int64(codes[i])
        v = c - wrap if (signed and c >= half) else c
        j = i // inner
        out[i] = np.float64(v - zero_point[j]) * scale[j]


@_fast
def absmax_rows(x, out):  # type: ignore[no-untyped-def]
    """out[r] = max |x[r, :]| for a 2-D C-contiguous array, rows in parallel."""
    for r in nb.prange(x.shape[0]):
        m = 0.0
        for c in range(x.shape[1]):
            m = max(m, abs(np.float64(x[r, c])))
        out[r] = m


@functools.lru_cache(maxsize=64)
def specialized_minifloat_from_f32(m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate, no_negzero,
                                   no_zero, signed, magic):  # type: ignore[no-untyped-def]  # fmt: skip
    """minifloat_from_f32_rne with the format's parameters compiled in as constants (about 1 s
    to compile, then ~4x faster: the branches of other formats fold away); worth it for large
    arrays only."""

    @nb.njit(nogil=True, parallel=True, error_model="numpy", boundscheck=False)
    def kernel(bits, out):  # type: ignore[no-untyped-def]
        for i in nb.prange(bits.size):
            out[i] = _minifloat_code_f32(bits[i], m, emin, off, max_mag, inf_mag, nan_code, sign_shift, saturate,
                                         no_negzero, no_zero, signed, magic)  # fmt: skip

    return kernel
