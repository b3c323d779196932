"""A hybrid memory for long inputs: exact local attention plus a compressed memory.

A decoder that caches every key and value needs memory that grows with the input. A
*hybrid cache* keeps two kinds of memory of constant size:

- a **local memory**: the keys and values of the last ``window`` positions, attended to
  exactly with softmax attention (a sliding window);
- a **compressed memory**: every older position, folded into the running sums of
  linear attention, ``mu = sum_j phi(k_j)^T v_j`` and ``nu = sum_j phi(k_j)``, a
  ``(d_k, d_v)`` matrix and a ``(d_k,)`` vector however many positions they hold.

Query ``i`` reads both, ``local_i = softmax attention over keys i - window < j <= i``
and ``memory_i = phi(q_i) mu / (phi(q_i) nu)`` over keys ``j <= i - window``, and mixes
them with a gate ``g``: ``o_i = (1 - g) local_i + g memory_i`` (until a position leaves
the window the memory is empty and ``o_i = local_i``). This is the design of
Infini-attention (Munkhdalai et al., 2024), here position by position rather than in
segments; the Compressive Transformer (Rae et al., 2020) compresses old memories with
learned functions instead.

:func:`hybrid_attention` computes all positions at once; a streaming implementation
that evicts each key from the window into ``mu`` and ``nu`` gives the same outputs.
"""

from __future__ import annotations

import torch

from llmcourse.checks import check_int
from llmcourse.modules.linear_attention import FeatureMap, elu_feature_map
from llmcourse.modules.sparse_attention import check_self_attention_qkv, sliding_window_attention


def compressed_memory_read(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    feature_map: FeatureMap = elu_feature_map,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal linear attention of each query over the keys that left its window.

    Query ``i`` reads ``phi(q_i) mu_{i - window} / (phi(q_i) nu_{i - window})``, the
    running sums over keys ``j <= i - window``.

    Args:
        q, k: ``(..., n, d_k)``.
        v: ``(..., n, d_v)``.
        window: the size of the local memory, >= 1.

    Returns:
        ``(read, has_memory)``: ``read (..., n, d_v)`` (0 where the memory is empty) and
        ``has_memory (n,)`` bool, True for ``i >= window``.
    """
    check_int("window", window)
    check_self_attention_qkv(q, k, v)
    n = q.shape[-2]
    phi_q, phi_k = feature_map(q), feature_map(k)
    mu = torch.einsum("...nd,...ne->...nde", phi_k, v).cumsum(dim=-3)  # mu_j, sums to j
    nu = phi_k.cumsum(dim=-2)
    has_memory = torch.arange(n, device=q.device) >= window
    read = q.new_zeros(*q.shape[:-1], v.shape[-1])
    if n > window:
        # query i reads the sums up to key i - window
        mu_old, nu_old = mu[..., : n - window, :, :], nu[..., : n - window, :]
        q_new = phi_q[..., window:, :]
        numerator = torch.einsum("...nd,...nde->...ne", q_new, mu_old)
        read[..., window:, :] = numerator / (q_new * nu_old).sum(dim=-1, keepdim=True)
    return read, has_memory


def hybrid_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    gate: float | torch.Tensor = 0.5,
    feature_map: FeatureMap = elu_feature_map,
) -> torch.Tensor:
    """Causal attention over a local window plus a compressed memory of older positions.

    Args:
        q, k: ``(..., n, d_k)``.
        v: ``(..., n, d_v)``.
        window: keys at distance less than ``window`` are attended to exactly.
        gate: the weight of the compressed memory, in [0, 1]; a float, or a tensor
            broadcastable to ``(..., n, d_v)`` (e.g. one gate per head, ``(heads, 1, 1)``).
        feature_map: the positive ``phi`` of the linear-attention memory.

    Returns:
        ``(..., n, d_v)``: ``(1 - gate) * local + gate * memory`` where the memory holds
        something (``i >= window``), the local attention alone before.
    """
    gate = torch.as_tensor(gate, dtype=q.dtype)
    if not ((gate >= 0) & (gate <= 1)).all():
        raise ValueError("gate must be in [0, 1]")
    memory, has_memory = compressed_memory_read(q, k, v, window, feature_map)
    local = sliding_window_attention(q, k, v, window, causal=True)
    mixed = (1 - gate) * local + gate * memory
    return torch.where(has_memory.unsqueeze(-1), mixed, local)
