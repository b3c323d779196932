"""Exact attention in tiles, with an online softmax: the idea of FlashAttention.

Dense attention ``softmax(q k^T / sqrt(d_k)) v`` forms the ``(n_q, n_k)`` scores before it
multiplies them by ``v``: memory quadratic in the length. But a softmax can be computed
in one pass over its inputs, block by block, if we carry the running maximum ``m`` of
the scores seen so far and the running sum ``l`` of their exponentials (Milakov and
Gimelshein, 2018). For a query, after the scores ``s`` of a new block of keys:

    m' = max(m, max_j s_j)                           new running maximum
    c  = exp(m - m')                                 rescales what was summed under m
    l' = c l + sum_j exp(s_j - m')                   running denominator
    a' = c a + sum_j exp(s_j - m') v_j               running numerator, (d_v,)

starting from ``m = -inf``, ``l = 0``, ``a = 0``. After the last block the output is
``a / l``: exactly the softmax-weighted average, since every term of ``a`` and ``l``
ends up multiplied by the same ``exp(-m_final)``. FlashAttention (Dao et al., 2022)
runs this loop over tiles of queries and keys small enough for a GPU's on-chip
memory, so the ``n x n`` matrix never exists anywhere.

:func:`tiled_attention` is that loop in PyTorch: for each block of ``block_size``
queries, it visits the blocks of ``block_size`` keys (for a causal model only those
not entirely in the future) and updates ``m``, ``l`` and ``a`` of the block's queries.
The largest intermediate is a ``block_size x block_size`` tile of scores, whatever the
length. Only the forward pass has this memory: autograd keeps every tile for the
backward pass, which FlashAttention instead recomputes tile by tile.

:func:`peak_tensor_bytes` measures what a function allocates: it watches every tensor
that PyTorch's operators create while it runs and reports the largest number of bytes
alive at once, which is how Chapter 7 compares dense and tiled attention.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from llmcourse.checks import check_int, describe


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.ndim < 2 or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor (..., length, dim), got {describe(t)}"
            )
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            "q, k and v must have the same leading (batch) dimensions, got "
            f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same length n_k, got {k.shape[-2]} and {v.shape[-2]}"
        )
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        raise ValueError("attention needs at least one query and one key")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}"
        )


def tiled_attention(
    q: Tensor, k: Tensor, v: Tensor, block_size: int = 64, causal: bool = False
) -> Tensor:
    """``softmax(q k^T / sqrt(d_k)) v``, one ``block_size x block_size`` tile at a time.

    Args:
        q: ``(..., n_q, d_k)`` queries.
        k: ``(..., n_k, d_k)`` keys.
        v: ``(..., n_k, d_v)`` values; the leading dimensions of the three are equal.
        block_size: queries and keys per tile; the last tile of each is shorter when
            ``block_size`` does not divide the length.
        causal: query ``i`` sees keys ``j <= i`` only (needs ``n_q == n_k``); tiles
            entirely in the future are skipped.

    Returns:
        ``(..., n_q, d_v)``, equal to dense attention (to rounding), never holding more
        than one ``(..., block_size, block_size)`` tile of scores.
    """
    check_int("block_size", block_size)
    _check_qkv(q, k, v, causal)
    n_q, n_k = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1])
    output = q.new_empty(*q.shape[:-1], v.shape[-1])
    for q_start in range(0, n_q, block_size):
        q_end = min(q_start + block_size, n_q)
        q_block = q[..., q_start:q_end, :] * scale
        m = q.new_full((*q_block.shape[:-1], 1), -math.inf)  # running maximum
        total = q.new_zeros(m.shape)  # running sum of exp(score - m)
        acc = q.new_zeros(*q_block.shape[:-1], v.shape[-1])  # running sum of exp(score - m) v
        k_stop = q_end if causal else n_k  # later keys are all in the future
        for k_start in range(0, k_stop, block_size):
            k_end = min(k_start + block_size, n_k)
            scores = q_block @ k[..., k_start:k_end, :].transpose(-2, -1)
            if causal and k_end > q_start + 1:  # the tile crosses the diagonal
                rows = torch.arange(q_start, q_end, device=q.device)[:, None]
                cols = torch.arange(k_start, k_end, device=q.device)
                scores = scores.masked_fill(cols > rows, -math.inf)
            m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
            p = torch.exp(scores - m_new)  # key 0 is in every row's first tile: m_new > -inf
            correction = torch.exp(m - m_new)  # exp(-inf) = 0 on the first tile
            total = correction * total + p.sum(dim=-1, keepdim=True)
            acc = correction * acc + p @ v[..., k_start:k_end, :]
            m = m_new
        output[..., q_start:q_end, :] = acc / total
    return output


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages that operators create, while a tensor uses them."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, list[int]] = {}  # data pointer -> [bytes, tensors alive]
        self.current = self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.storages[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, Tensor)
        }
        for t in tree_leaves(out):
            if not isinstance(t, Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in self.storages:  # a view of a tensor created under the watch
                self.storages[key][1] += 1
            elif key in inputs:  # a view of, or an in-place result on, an outside tensor
                continue
            else:
                self.storages[key] = [storage.nbytes(), 1]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out


def peak_tensor_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)``; return its result and the peak bytes it allocated.

    The peak is the largest total size of the tensors created by PyTorch operators
    inside ``fn`` that were alive at the same moment (a storage counts once, however
    many views share it, until the last of them is freed). Tensors that existed before
    the call, such as the arguments, are not counted; the result is. The measure is the
    same on every run and every machine, unlike the memory of the process. Run it
    under ``torch.no_grad()`` to leave out what autograd keeps for a backward pass.
    """
    with _LiveBytes() as watch:
        result = fn(*args, **kwargs)
    return result, watch.peak
