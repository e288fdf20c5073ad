#!/usr/bin/env python3
"""Golden data for tests/test_safetensors.c, made by independent implementations.

Run with the oracle venv (needs numpy, torch, safetensors):
    /opt/oracle/bin/python tests/golden/make_safetensors_golden.py

Writes into tests/golden/safetensors/:
  tiny.safetensors      written by the `safetensors` package (torch tensors of six dtypes + metadata)
  tiny_expected.txt     per tensor: name, dtype, shape, then each element widened to f32 by torch,
                        as f32 bit patterns in hex
  f16_to_f32.bin        numpy float16 -> float32 for all 65536 bit patterns (uint32 little-endian)
  f32_cases.txt         f32 bit pattern, numpy astype(float16) bits, bf16 round-to-nearest-even bits
                        (computed here from exact rational distances, not from a bit trick)
"""
import os
from fractions import Fraction

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
rng = np.random.default_rng(20261124)


def f32_bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def write_tiny():
    t = {
        "w.f32": torch.tensor([[1.0, -2.5, 3.14159], [-0.0, 1e-30, 65504.0]], dtype=torch.float32),
        "w.f16": torch.tensor([0.1, -1.5, 6.1e-5, 65504.0], dtype=torch.float16),
        "w.bf16": torch.tensor([[0.1, -3.0], [1e30, -1e-30], [7.0, 0.0078125]], dtype=torch.bfloat16),
        "ids.i64": torch.tensor([0, -7, 1 << 40], dtype=torch.int64),
        "pos.i32": torch.tensor([5, -100000], dtype=torch.int32),
        "mask.u8": torch.tensor([0, 1, 255, 7, 9], dtype=torch.uint8),
        "empty.f32": torch.zeros((0, 3), dtype=torch.float32),
    }
    save_file(t, os.path.join(OUT, "tiny.safetensors"), metadata={"format": "pt"})
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}
    with open(os.path.join(OUT, "tiny_expected.txt"), "w") as f:
        for name in sorted(t):
            v = t[name]
            bits = f32_bits(v.to(torch.float32).flatten().numpy())
            f.write("%s %s %d %s %d %s\n" % (name, names[v.dtype], v.dim(),
                                             " ".join(str(d) for d in v.shape), bits.size,
                                             " ".join("%08x" % b for b in bits)))


def bf16_rne(u):
    """bf16 bits of the f32 with bits u, round to nearest even, from exact distances."""
    x = np.array([u], dtype=np.uint32).view(np.float32)[0]
    sign = u & 0x80000000
    if np.isnan(x):
        return None  # NaN: only NaN-ness and sign are checked
    if np.isinf(x):
        return u >> 16
    lo = u & 0xFFFF0000  # truncation (toward zero)
    if lo == u:
        return u >> 16
    hi = lo + 0x10000  # next bf16 away from zero; 0x7f80.. is +inf (2^128 before overflow)

    def value(b):
        if b & 0x7FFFFFFF == 0x7F800000:
            return Fraction(2) ** 128
        return abs(Fraction(float(np.array([b], dtype=np.uint32).view(np.float32)[0])))

    ax = abs(Fraction(float(x)))
    dl, dh = ax - value(lo), value(hi) - ax
    if dl < dh or (dl == dh and (lo >> 16) & 1 == 0):
        r = lo
    else:
        r = hi
    return ((r | sign) >> 16) & 0xFFFF


def f32_cases():
    cases = []
    special = [0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 65504.0, 65519.0, 65520.0, -65520.0, 65536.0,
               1e10, 3.4028234663852886e38, 1.1754943508222875e-38, 1e-45, 1e-40, -1e-40,
               2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, -(5 * 2.0 ** -25), 2.0 ** -14,
               1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 0.1, 1.0 / 3]
    cases += list(f32_bits(np.array(special, dtype=np.float64).astype(np.float32)))
    cases += [0x387FFFFF, 0x477FEFFF, 0x477FF000, 0x33000000, 0x33000001, 0x7F7FFFFF, 0x7F7F8000]
    cases += [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFA00001, 0x7FC01234]  # NaNs
    cases += list(rng.integers(0, 1 << 32, 1000, dtype=np.uint64).astype(np.uint32))
    # Values around the f16 range: random exponent in [-27, 16], random mantissa.
    e = rng.integers(-27 + 127, 16 + 127, 1000).astype(np.uint32)
    m = rng.integers(0, 1 << 23, 1000, dtype=np.uint32)
    s = rng.integers(0, 2, 1000).astype(np.uint32) << 31
    cases += list(s | (e << 23) | m)
    # Exact f16 ties: midpoints between consecutive finite f16 values (subnormal ones included).
    h = rng.integers(0, 0x7BFF, 1000).astype(np.uint16)
    a = h.view(np.float16).astype(np.float64)
    b = (h + 1).view(np.float16).astype(np.float64)
    cases += list(f32_bits(((a + b) / 2).astype(np.float32)))
    # Exact bf16 ties: low half exactly 0x8000.
    cases += list((rng.integers(0, 1 << 16, 500).astype(np.uint32) << 16) | 0x8000)
    u = np.array(cases, dtype=np.uint32)
    f16 = u.view(np.float32).astype(np.float16).view(np.uint16)
    with open(os.path.join(OUT, "f32_cases.txt"), "w") as f:
        f.write("# f32_bits numpy_f16_bits bf16_rne_bits (nan: '-')\n")
        for x, y in zip(u, f16):
            r = bf16_rne(int(x))
            f.write("%08x %04x %s\n" % (x, y, "-" if r is None else "%04x" % r))


def f16_table():
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    h.view(np.float16).astype(np.float32).view(np.uint32).astype("<u4").tofile(
        os.path.join(OUT, "f16_to_f32.bin"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_tiny()
    f32_cases()
    f16_table()
