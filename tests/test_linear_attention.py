"""Linear attention: the matrix, linear (prefix-sum) and recurrent forms against a naive loop.

The reference is the definition written as a double loop over queries and keys,
``o_i = sum_j s_ij v_j / sum_j s_ij`` with ``s_ij = phi(q_i) . phi(k_j)`` and
``phi(x) = elu(x) + 1`` computed elementwise by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.modules import (
    elu_feature_map,
    linear_attention,
    linear_attention_recurrent,
    linear_attention_step,
    linear_attention_weights,
)

DTYPE = torch.float64


def phi_by_hand(x: float) -> float:
    return x + 1 if x > 0 else math.exp(x)  # elu(x) + 1


def naive(q, k, v, causal):
    """The definition, one (query, key) pair at a time; q, k, v are 2-D."""
    out = torch.zeros(q.shape[0], v.shape[1], dtype=DTYPE)
    for i in range(q.shape[0]):
        numerator, denominator = torch.zeros(v.shape[1], dtype=DTYPE), 0.0
        for j in range(i + 1 if causal else k.shape[0]):
            pairs = zip(q[i].tolist(), k[j].tolist(), strict=True)
            s = sum(phi_by_hand(a) * phi_by_hand(b) for a, b in pairs)
            numerator += s * v[j]
            denominator += s
        out[i] = numerator / denominator
    return out


def qkv(seed, batch_shape, n, d_k, d_v, n_k=None):
    g = torch.Generator().manual_seed(seed)
    n_k = n if n_k is None else n_k
    q = torch.randn(*batch_shape, n, d_k, generator=g, dtype=DTYPE)
    k = torch.randn(*batch_shape, n_k, d_k, generator=g, dtype=DTYPE)
    v = torch.randn(*batch_shape, n_k, d_v, generator=g, dtype=DTYPE)
    return q, k, v


def test_feature_map_is_elu_plus_one_and_positive():
    x = torch.tensor([-30.0, -1.0, 0.0, 0.5, 3.0], dtype=DTYPE)
    expected = torch.tensor([phi_by_hand(t) for t in x.tolist()], dtype=DTYPE)
    torch.testing.assert_close(elu_feature_map(x), expected)
    assert (elu_feature_map(x) > 0).all()


@pytest.mark.parametrize("causal", [True, False])
def test_all_forms_match_the_naive_loop(causal):
    q, k, v = qkv(0, (), 7, 3, 2)
    expected = naive(q, k, v, causal)
    torch.testing.assert_close(linear_attention(q, k, v, causal), expected)
    torch.testing.assert_close(linear_attention_weights(q, k, causal) @ v, expected)
    if causal:
        torch.testing.assert_close(linear_attention_recurrent(q, k, v), expected)


def test_non_causal_with_fewer_keys_than_queries():
    q, k, v = qkv(1, (), 6, 4, 3, n_k=3)
    torch.testing.assert_close(linear_attention(q, k, v, causal=False), naive(q, k, v, False))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch_shape=st.sampled_from([(), (2,), (2, 3)]),
    n=st.integers(1, 16),
    d_k=st.integers(1, 5),
    d_v=st.integers(1, 4),
)
def test_forms_agree_on_random_shapes(seed, batch_shape, n, d_k, d_v):
    q, k, v = qkv(seed, batch_shape, n, d_k, d_v)
    parallel = linear_attention(q, k, v, causal=True)
    assert parallel.shape == (*batch_shape, n, d_v)
    torch.testing.assert_close(linear_attention_recurrent(q, k, v), parallel)
    torch.testing.assert_close(linear_attention_weights(q, k) @ v, parallel)
    torch.testing.assert_close(
        linear_attention(q, k, v, causal=False), linear_attention_weights(q, k, False) @ v
    )


def test_weights_are_a_causal_distribution():
    q, k, _ = qkv(2, (3,), 9, 4, 1)
    weights = linear_attention_weights(q, k)
    assert (weights >= 0).all()
    assert not weights.triu(1).any()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 9, dtype=DTYPE))
    assert (weights.tril() > 0).sum() == 3 * 9 * 10 // 2, "phi > 0: no allowed weight is 0"


def test_first_causal_output_is_the_first_value():
    q, k, v = qkv(3, (2,), 5, 3, 4)
    torch.testing.assert_close(linear_attention(q, k, v)[:, 0], v[:, 0])


def test_step_updates_the_running_sums():
    q, k, v = (torch.tensor(t, dtype=DTYPE) for t in ([0.5, -1.0], [1.0, 0.0], [2.0, 3.0]))
    mu, nu = torch.ones(2, 2, dtype=DTYPE), torch.tensor([1.0, 2.0], dtype=DTYPE)
    o, new_mu, new_nu = linear_attention_step(q, k, v, mu, nu)
    phi_k = torch.tensor([2.0, 1.0], dtype=DTYPE)  # elu + 1 of [1, 0]
    phi_q = torch.tensor([1.5, math.exp(-1.0)], dtype=DTYPE)
    torch.testing.assert_close(new_mu, mu + torch.outer(phi_k, v))  # mu + k'^T v
    torch.testing.assert_close(new_nu, nu + phi_k)  # nu + k'^T
    torch.testing.assert_close(o, phi_q @ new_mu / (phi_q @ new_nu))
    assert torch.equal(mu, torch.ones(2, 2, dtype=DTYPE)), "the old state is not modified"


def test_gradients_of_linear_and_recurrent_forms_agree():
    ours = [t.requires_grad_() for t in qkv(4, (2,), 6, 3, 2)]
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    linear_attention(*ours).square().sum().backward()
    linear_attention_recurrent(*theirs).square().sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_another_feature_map():
    q, k, v = qkv(5, (), 5, 3, 2)
    relu_plus = lambda x: torch.relu(x) + 0.1  # noqa: E731
    scores = (relu_plus(q) @ relu_plus(k).T).tril()
    expected = scores @ v / scores.sum(-1, keepdim=True)
    torch.testing.assert_close(linear_attention(q, k, v, feature_map=relu_plus), expected)
    torch.testing.assert_close(linear_attention_recurrent(q, k, v, feature_map=relu_plus), expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: linear_attention(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, 2)), "q"),
        (lambda: linear_attention(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(5, 2)), "v"),
        (lambda: linear_attention(torch.zeros(3), torch.zeros(3), torch.zeros(3)), "q"),
        (
            lambda: linear_attention(torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(5, 2)),
            "causal attention needs as many queries as keys, got 4 and 5",
        ),
        (
            lambda: linear_attention(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 2)),
            "at least one query",
        ),
        (
            lambda: linear_attention_recurrent(
                torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(5, 2)
            ),
            "as many queries as keys",
        ),
        (
            lambda: linear_attention_step(
                torch.zeros(3), torch.zeros(3), torch.zeros(2), torch.zeros(2, 3), torch.zeros(3)
            ),
            "mu",
        ),
    ],
)
def test_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()
