"""A NumPy float32 replay of bitsandbytes' CUDA 8-bit optimizer kernels (the test oracle).

Written from the kernels ``kOptimizerStatic8bit2StateBlockwise`` /
``kOptimizerStatic8bit1StateBlockwise`` and ``quantize_2D`` / ``dQuantize`` (bitsandbytes
95f9af30): the binary search over the code with its midpoint comparisons, the sign guard, the
float32 arithmetic in the kernel's order. Independent of the library's lookup-table rounding.
Two documented choices of the library are followed: the product with the correctly rounded
reciprocal of the block maximum instead of ``__fdividef``'s approximate one, and the code of 0
for an all-zero block (the kernel computes 0/0 there). Compilers may fuse a multiply and an add
into one rounding (nvcc and XLA:CPU both do, not always the same pair), so a moment can differ
by an ulp: a code may then differ by one where the normalised value lies
within a few ulp of a midpoint, which :func:`near_tie` recognises.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def binary_search_code(code: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``dQuantize<0>`` / ``quantize_2D``: the kernel's nearest-code search (vectorised)."""
    code = code.astype(F32)
    x = x.astype(F32)
    pivot = np.full(x.shape, 127)
    upper_pivot = np.full(x.shape, 255)
    lower_pivot = np.zeros(x.shape, int)
    lower = np.full(x.shape, F32(-1.0))
    upper = np.full(x.shape, F32(1.0))
    val = code[pivot]
    for i in (64, 32, 16, 8, 4, 2, 1):
        gt = x > val
        lower_pivot = np.where(gt, pivot, lower_pivot)
        lower = np.where(gt, val, lower)
        upper_pivot = np.where(gt, upper_pivot, pivot)
        upper = np.where(gt, upper, val)
        pivot = np.where(gt, pivot + i, pivot - i)
        val = code[pivot]
    upper = np.where(upper_pivot == 255, code[255], upper)
    lower = np.where(lower_pivot == 0, code[0], lower)
    gt = x > val
    mid_up = ((upper + val) * F32(0.5)).astype(F32)
    mid_lo = ((lower + val) * F32(0.5)).astype(F32)
    return np.where(
        gt, np.where(x > mid_up, upper_pivot, pivot), np.where(x < mid_lo, lower_pivot, pivot)
    )


def _blocks(x, block, fill=0):
    flat = np.asarray(x).reshape(-1)
    nb = max(1, -(-flat.size // block))
    out = np.full(nb * block, fill, dtype=flat.dtype)
    out[: flat.size] = flat
    return out.reshape(nb, block)


def requantize(s: np.ndarray, code: np.ndarray, signed: bool):
    """New codes, absmax and normalised values of the float32 state ``s`` (blocks), with the
    sign guard."""
    absmax = np.max(np.abs(s), axis=1).astype(F32)
    safe = np.where(absmax > 0, absmax, F32(1)).astype(F32)
    x = (s * (F32(1) / safe)[:, None]).astype(F32)
    c = binary_search_code(code, x)
    if signed:
        wrong = np.signbit(code[c]) != np.signbit(s)
        c = np.where(wrong, np.where(s > 0, c + 1, c - 1), c) % 256
    return c.astype(np.uint8), absmax, x


class Replay:
    """One optimizer's state for a dict of float32 params; ``step(grads, params)`` returns
    the new params (the kernel's own in-place result)."""

    def __init__(self, kind, params, code1, code2=None, *, lr, b1, b2=0.0, eps=1e-8, wd=0.0,
                 block=256, min_8bit_size=4096):  # fmt: skip
        self.kind, self.code1, self.code2 = kind, code1, code2
        self.lr, self.b1, self.b2, self.eps, self.wd = F32(lr), F32(b1), F32(b2), F32(eps), F32(wd)
        self.block, self.min = block, min_8bit_size
        self.step_count = 0
        self.state = {}
        for k, p in params.items():
            eight = p.size >= max(min_8bit_size, 1)
            if eight:
                nb = max(1, -(-p.size // block))
                st = {"c1": np.zeros(nb * block, np.uint8), "a1": np.zeros(nb, F32)}
                if kind == "adam":
                    st.update(c2=np.zeros(nb * block, np.uint8), a2=np.zeros(nb, F32))
            else:
                st = {"s1": np.zeros(p.size, F32), "s2": np.zeros(p.size, F32)}
            st["eight"] = eight
            self.state[k] = st

    def step(self, grads, params):
        self.step_count += 1
        return {k: self._leaf(k, grads[k], params[k]) for k in params}

    def _leaf(self, k, g, p):
        st, shape, n = self.state[k], p.shape, p.size
        if st["eight"]:
            gb = _blocks(g.astype(F32), self.block)
            pb = _blocks(p.astype(F32), self.block)
            # the kernel loads and reduces the valid entries only: the padding is a zero state
            valid = (np.arange(gb.size) < n).reshape(gb.shape)
            c1 = st["c1"].reshape(gb.shape)
            s1 = np.where(valid, self.code1[c1] * st["a1"][:, None], F32(0)).astype(F32)
            if self.kind == "adam":
                c2 = st["c2"].reshape(gb.shape)
                s2 = np.where(valid, self.code2[c2] * st["a2"][:, None], F32(0)).astype(F32)
        else:
            gb, pb = g.astype(F32).reshape(1, -1), p.astype(F32).reshape(1, -1)
            s1, s2 = st["s1"].reshape(1, -1), st["s2"].reshape(1, -1)
        one = F32(1)
        lr, b1, b2 = self.lr, self.b1, self.b2
        if self.kind == "adam":
            finite = np.isfinite(gb)
            g0 = np.where(finite, gb, F32(0)).astype(F32)
            s2 = np.where(finite, s2 * b2 + ((one - b2) * g0) * g0, F32(0)).astype(F32)
            s1 = np.where(finite, s1 * b1 + (one - b1) * g0, F32(0)).astype(F32)
            t = F32(self.step_count)
            corr1 = one - b1**t
            corr2 = np.sqrt(one - b2**t)
            step_size = (-lr * corr2) / corr1
            new_p = pb + step_size * (s1 / (np.sqrt(s2) + corr2 * self.eps))
            new_p = new_p * (one - lr * self.wd)
            new_p = np.where(finite, new_p, pb).astype(F32)
        elif self.kind == "lion":
            decayed = pb * (one - lr * self.wd)
            u = lr * np.sign(s1 * b1 + (one - b1) * gb)
            s1 = (s1 * b2 + (one - b2) * gb).astype(F32)
            new_p = (decayed - u).astype(F32)
        else:  # momentum
            gw = gb + pb * self.wd
            s1 = (gw if self.step_count == 1 else s1 * b1 + gw).astype(F32)
            new_p = (pb - lr * s1).astype(F32)
        if st["eight"]:
            c1n, st["a1"], st["x1"] = requantize(s1, self.code1, True)
            st["c1"] = c1n.reshape(-1)
            if self.kind == "adam":
                c2n, st["a2"], st["x2"] = requantize(s2, self.code2, False)
                st["c2"] = c2n.reshape(-1)
        else:
            st["s1"] = s1.reshape(-1)
            if self.kind == "adam":
                st["s2"] = s2.reshape(-1)
        return new_p.reshape(-1)[:n].reshape(shape)


def near_tie(code: np.ndarray, x: np.ndarray, ulps: int = 8) -> np.ndarray:
    """Whether float32 ``x`` lies within ``ulps`` ulp of a midpoint of ``code``."""
    code = code.astype(F32)
    mids = ((code[1:] + code[:-1]) * F32(0.5)).astype(F32)
    idx = np.clip(np.searchsorted(mids, x), 1, mids.size - 1)
    dist = np.minimum(np.abs(x - mids[idx]), np.abs(x - mids[idx - 1]))
    return dist <= ulps * np.spacing(np.abs(x).astype(F32)) + 1e-45
