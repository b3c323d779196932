"""Linear attention (Katharopoulos et al., 2020): the kernel trick, and attention as an RNN.

Softmax attention weighs value ``v_j`` for query ``i`` by ``exp(q_i . k_j / sqrt(d))``
normalised over ``j``. Replace that similarity by a kernel ``phi(q_i) . phi(k_j)``
with a positive feature map ``phi`` (here ``elu(x) + 1``):

    o_i = sum_j (phi(q_i) . phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j)
        = phi(q_i) (sum_j phi(k_j)^T v_j) / phi(q_i) (sum_j phi(k_j)^T).

The right-hand form computes ``phi(K)^T V``, a ``(d_k, d_v)`` matrix, once, instead
of the ``(n, n)`` weights: time and memory grow linearly with ``n``. In a decoder the
sums run over ``j <= i`` and become running sums, the state of a recurrent network,

    mu_i = mu_{i-1} + phi(k_i)^T v_i,    nu_i = nu_{i-1} + phi(k_i)^T,
    o_i = phi(q_i) mu_i / (phi(q_i) nu_i),

so generation needs a constant-size state instead of a growing cache of keys and
values. The same outputs come from three forms, checked equal in the tests:

- :func:`linear_attention_weights` then a product with ``v``: the ``(n, n)`` matrix
  form, quadratic like softmax attention;
- :func:`linear_attention`: the linear form (causal: prefix sums over all positions
  in parallel);
- :func:`linear_attention_recurrent`: one :func:`linear_attention_step` per position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

FeatureMap = Callable[[torch.Tensor], torch.Tensor]


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """``phi(x) = elu(x) + 1``, elementwise and positive (Katharopoulos et al., 2020)."""
    return F.elu(x) + 1


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.ndim < 2 or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"expected q (..., n_q, d_k) and k (..., n_k, d_k), got {tuple(q.shape)} "
            f"and {tuple(k.shape)}"
        )
    if k.shape[:-1] != v.shape[:-1]:
        raise ValueError(
            f"expected k (..., n_k, d_k) and v (..., n_k, d_v), got {tuple(k.shape)} "
            f"and {tuple(v.shape)}"
        )
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        raise ValueError("attention needs at least one query and one key")


def _check_causal(q: torch.Tensor, k: torch.Tensor) -> None:
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys, got {q.shape[-2]} and {k.shape[-2]}"
        )


def linear_attention_weights(
    q: torch.Tensor, k: torch.Tensor, causal: bool = True, feature_map: FeatureMap = elu_feature_map
) -> torch.Tensor:
    """The ``(n_q, n_k)`` weights of linear attention, the quadratic "matrix" form.

    ``w_ij = phi(q_i) . phi(k_j) / sum_l phi(q_i) . phi(k_l)`` (sums over ``l <= i`` and
    ``w_ij = 0`` for ``j > i`` when causal). ``weights @ v`` is the attention output.

    Args:
        q: ``(..., n_q, d_k)`` queries.
        k: ``(..., n_k, d_k)`` keys; causal needs ``n_k == n_q``.
        causal: no query sees a later key.
        feature_map: positive elementwise ``phi``.

    Returns:
        ``(..., n_q, n_k)`` weights, non-negative, each row summing to 1.
    """
    _check_qkv(q, k, k)
    scores = feature_map(q) @ feature_map(k).transpose(-2, -1)
    if causal:
        _check_causal(q, k)
        scores = scores.tril()
    return scores / scores.sum(dim=-1, keepdim=True)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    feature_map: FeatureMap = elu_feature_map,
) -> torch.Tensor:
    """Linear attention in time and memory linear in the sequence length.

    Not causal: ``phi(Q) (phi(K)^T V)`` normalised by ``phi(Q) phi(K)^T 1``. Causal: the
    running sums ``mu_i`` and ``nu_i`` of every position at once, as prefix sums
    (``cumsum``), which holds ``(n, d_k, d_v)`` numbers: linear in ``n``.

    Args:
        q: ``(..., n_q, d_k)`` queries.
        k: ``(..., n_k, d_k)`` keys; causal needs ``n_k == n_q``.
        v: ``(..., n_k, d_v)`` values.
        causal: query ``i`` attends to keys ``j <= i`` only.
        feature_map: positive elementwise ``phi``.

    Returns:
        ``(..., n_q, d_v)``.
    """
    _check_qkv(q, k, v)
    q, k = feature_map(q), feature_map(k)
    if not causal:
        kv = k.transpose(-2, -1) @ v  # (..., d_k, d_v): sum_j phi(k_j)^T v_j
        return (q @ kv) / (q @ k.sum(dim=-2).unsqueeze(-1))
    _check_causal(q, k)
    mu = torch.einsum("...nd,...ne->...nde", k, v).cumsum(dim=-3)  # (..., n, d_k, d_v)
    nu = k.cumsum(dim=-2)  # (..., n, d_k)
    numerator = torch.einsum("...nd,...nde->...ne", q, mu)
    return numerator / (q * nu).sum(dim=-1, keepdim=True)


def linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mu: torch.Tensor,
    nu: torch.Tensor,
    feature_map: FeatureMap = elu_feature_map,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of causal linear attention as a recurrent network.

    ``mu <- mu + phi(k)^T v``, ``nu <- nu + phi(k)``, ``o = phi(q) mu / (phi(q) . nu)``.

    Args:
        q, k: ``(..., d_k)`` the query and key of the new position.
        v: ``(..., d_v)`` its value.
        mu: ``(..., d_k, d_v)`` the state before this position (zeros at the start).
        nu: ``(..., d_k)`` the normaliser before this position (zeros at the start).

    Returns:
        ``(o, mu, nu)``: the output ``(..., d_v)`` and the new state (new tensors).
    """
    if q.shape != k.shape or mu.shape != (*k.shape, v.shape[-1]) or nu.shape != k.shape:
        raise ValueError(
            "expected q, k, nu (..., d_k), v (..., d_v) and mu (..., d_k, d_v), got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(nu.shape)}, {tuple(v.shape)} "
            f"and {tuple(mu.shape)}"
        )
    q, k = feature_map(q), feature_map(k)
    mu = mu + k.unsqueeze(-1) * v.unsqueeze(-2)
    nu = nu + k
    o = (q.unsqueeze(-2) @ mu).squeeze(-2) / (q * nu).sum(dim=-1, keepdim=True)
    return o, mu, nu


def linear_attention_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, feature_map: FeatureMap = elu_feature_map
) -> torch.Tensor:
    """Causal linear attention computed position by position with a constant-size state.

    Args:
        q, k: ``(..., n, d_k)``.
        v: ``(..., n, d_v)``.

    Returns:
        ``(..., n, d_v)``, equal to ``linear_attention(q, k, v, causal=True)``.
    """
    _check_qkv(q, k, v)
    _check_causal(q, k)
    mu = q.new_zeros(*k.shape[:-2], k.shape[-1], v.shape[-1])
    nu = q.new_zeros(*k.shape[:-2], k.shape[-1])
    outputs = []
    for i in range(q.shape[-2]):
        o, mu, nu = linear_attention_step(
            q[..., i, :], k[..., i, :], v[..., i, :], mu, nu, feature_map
        )
        outputs.append(o)
    return torch.stack(outputs, dim=-2)
