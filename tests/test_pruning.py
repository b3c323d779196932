"""Pruning (llmcourse.compression.pruning): magnitude and movement masks, keeping pruned
weights at zero while re-training, structured pruning of FFN neurons, sparse storage."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.compression import (
    MovementScores,
    cubic_sparsity,
    ffn_neuron_scores,
    global_magnitude_masks,
    keep_top,
    layerwise_magnitude_masks,
    magnitude_mask,
    mask_sparsity,
    prunable_weights,
    prune,
    prune_ffn_neurons,
    sparse_nbytes,
)
from llmcourse.modules import FeedForward, SwiGLU
from llmcourse.training import AdamW, next_token_loss, parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def test_magnitude_mask_by_hand():
    w = torch.tensor([[0.5, -0.1, 2.0], [-3.0, 0.05, 0.2]])
    assert magnitude_mask(w, 0.5).tolist() == [[True, False, True], [True, False, False]]
    assert magnitude_mask(w, 0.0).all()
    assert magnitude_mask(w, 0.9).sum() == 1  # round(0.9 * 6) = 5 pruned: only -3.0 stays
    ties = torch.tensor([1.0, -1.0, 1.0, 2.0])
    assert magnitude_mask(ties, 0.5).tolist() == [False, False, True, True]  # earlier first


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.77, 0.95])
def test_magnitude_masks_prune_the_smallest(sparsity):
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(20, 30, generator=g), "b": torch.randn(40, 10, generator=g) * 3}
    for masks in (
        global_magnitude_masks(weights, sparsity),
        layerwise_magnitude_masks(weights, sparsity),
    ):
        n = sum(w.numel() for w in weights.values())
        assert abs(mask_sparsity(masks) - sparsity) <= 1 / n + 1e-9 or len(masks) > 1
        for name, mask in masks.items():
            kept, pruned = weights[name].abs()[mask], weights[name].abs()[~mask]
            assert pruned.numel() == 0 or kept.numel() == 0 or pruned.max() <= kept.min()
    glob = global_magnitude_masks(weights, sparsity)
    everything = torch.cat([w.abs().flatten() for w in weights.values()])
    kept = torch.cat([weights[k].abs()[m] for k, m in glob.items()])
    assert len(kept) == everything.numel() - round(sparsity * everything.numel())
    assert kept.min() >= everything.sort().values[round(sparsity * everything.numel()) - 1]
    # global pruning takes more from the layer of small weights
    assert (~glob["a"]).float().mean() >= (~glob["b"]).float().mean()
    for name, mask in layerwise_magnitude_masks(weights, sparsity).items():
        assert (~mask).sum() == round(sparsity * weights[name].numel())


def test_prune_keeps_pruned_weights_at_zero_while_re_training():
    model = random_gpt(vocab_size=30, block_size=8)
    weights = prunable_weights(model)
    assert len(weights) == 12 and "lm_head.weight" not in weights
    masks = global_magnitude_masks(weights, 0.6)
    pruned = prune(model, masks)
    optimizer = AdamW(parameter_groups(model, 0.1), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    before = {n: w.detach().clone() for n, w in weights.items()}
    for _ in range(5):
        ids = torch.randint(0, 30, (4, 9), generator=g)
        optimizer.zero_grad()
        next_token_loss(model, (ids[:, :-1], ids[:, 1:])).backward()
        optimizer.step()
    for name, w in weights.items():
        assert bool((w[~masks[name]] == 0).all())
        assert not torch.equal(w[masks[name]], before[name][masks[name]])  # the rest trained
    pruned.remove()
    with pytest.raises(ValueError, match="no parameter"):
        prune(model, {"nope": masks[next(iter(masks))]})
    with pytest.raises(ValueError, match="bool tensor of shape"):
        prune(model, {name: mask.float() for name, mask in masks.items()})


def test_movement_scores_accumulate_minus_w_times_the_gradient():
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    scores = MovementScores({"weight": layer.weight})
    expected = torch.zeros(3, 5)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for step in range(3):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        layer(x).square().sum().backward()
        expected -= layer.weight.detach() * layer.weight.grad
        optimizer.step()
    torch.testing.assert_close(scores.scores["weight"], expected)
    scores.remove()
    layer(torch.randn(2, 5)).sum().backward()
    torch.testing.assert_close(scores.scores["weight"], expected)  # no longer accumulating
    assert scores.masks(0.4)["weight"].tolist() == keep_top(expected, 0.4).tolist()


def test_movement_keeps_weights_that_grow_magnitude_keeps_large_ones():
    # A gradient that pushes the small weights away from 0 and the large ones towards it:
    # movement pruning keeps the small growing ones, magnitude pruning the large ones.
    w = torch.nn.Parameter(torch.tensor([0.1, -0.1, 3.0, -3.0]))
    scores = MovementScores({"w": w})
    (w * torch.tensor([-1.0, 1.0, 0.1, -0.1])).sum().backward()
    assert scores.masks(0.5)["w"].tolist() == [True, True, False, False]
    assert magnitude_mask(w, 0.5).tolist() == [False, False, True, True]
    assert scores.masks(0.5, scope="global")["w"].tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="scope"):
        scores.masks(0.5, scope="row")


def test_cubic_schedule():
    assert cubic_sparsity(0, 10, 0.9) == 0.0 and cubic_sparsity(10, 10, 0.9) == 0.9
    assert cubic_sparsity(5, 10, 0.8) == pytest.approx(0.8 - 0.8 * 0.5**3)
    values = [cubic_sparsity(t, 20, 0.9, 0.1) for t in range(21)]
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(s > 0 for s in steps) and steps == sorted(steps, reverse=True)
    with pytest.raises(ValueError, match="step must be in"):
        cubic_sparsity(11, 10, 0.5)


@pytest.mark.parametrize("kind", ["gelu", "swiglu"])
def test_structured_pruning_removes_the_weakest_neurons(kind):
    torch.manual_seed(0)
    ffn = FeedForward(8, 32) if kind == "gelu" else SwiGLU(8, 32)
    with torch.no_grad():
        ffn.up.weight[[3, 17]] *= 0.01  # two neurons that hardly matter
    x = torch.randn(5, 8)
    before = ffn(x)
    keep = prune_ffn_neurons(ffn, 2 / 32)
    assert 3 not in keep.tolist() and 17 not in keep.tolist() and len(keep) == 30
    assert ffn.up.weight.shape == (30, 8) and ffn.down.weight.shape == (8, 30)
    assert (ffn(x) - before).abs().max() < 0.05 * before.abs().max()
    scores = ffn_neuron_scores(ffn)
    assert scores.shape == (30,)


def test_structured_pruning_keeps_the_function_of_the_kept_neurons():
    torch.manual_seed(1)
    ffn = FeedForward(6, 12)
    x = torch.randn(4, 6)
    hidden = torch.nn.functional.gelu(ffn.up(x))
    keep = prune_ffn_neurons(ffn, 0.5)
    expected = hidden[:, keep] @ ffn.down.weight.T + ffn.down.bias
    torch.testing.assert_close(ffn(x), expected)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune_ffn_neurons(ffn, 1.0)


def test_sparse_storage():
    mask = torch.zeros(10, 20, dtype=torch.bool)
    mask[:, :5] = True  # 75% sparse
    sizes = sparse_nbytes(mask)
    assert sizes == {"dense": 800, "csr": 50 * 8 + 11 * 4, "bitmap": 25 + 200}
    half = torch.ones(10, 20, dtype=torch.bool)
    half[:, ::2] = False
    assert sparse_nbytes(half)["csr"] > sparse_nbytes(half)["dense"]  # 50%: CSR is larger


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, "half"])
def test_sparsity_must_be_in_zero_one(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_mask(torch.randn(3, 3), sparsity)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        global_magnitude_masks({"w": torch.randn(3, 3)}, sparsity)
