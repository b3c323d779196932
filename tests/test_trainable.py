"""The trained part of a model (llmcourse.peft.trainable): BitFit, counting, saving and
loading only the trained parameters, the checksum of the frozen ones, training memory."""

from __future__ import annotations

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.models import gpt_parameter_counts
from llmcourse.peft import (
    apply_lora,
    bitfit,
    count_parameters,
    freeze,
    load_trainable,
    save_trainable,
    state_checksum,
    trainable_state,
    training_memory,
)
from llmcourse.training import AdamW, next_token_loss, parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def lm_batch(seed: int = 0, vocab: int = 30, time: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, vocab, (4, time + 1), generator=torch.Generator().manual_seed(seed))
    return ids[:, :-1], ids[:, 1:]


def test_counting_counts_tied_weights_once():
    model = random_gpt(vocab_size=30, block_size=8)
    assert count_parameters(model) == gpt_parameter_counts(model.config)["total"]
    assert count_parameters(freeze(model), trainable=True) == 0


def test_bitfit_trains_every_bias_and_nothing_else():
    model = random_gpt(vocab_size=30, block_size=8)
    names = bitfit(model)
    # per block: 4 attention biases (16 each), FFN biases 64 + 16, two LayerNorm biases;
    # then the final LayerNorm's bias
    assert len(names) == 2 * 8 + 1
    assert count_parameters(model, trainable=True) == 2 * (4 * 16 + 64 + 16 + 2 * 16) + 16
    with pytest.raises(ValueError, match="no bias"):
        bitfit(random_gpt(vocab_size=30, block_size=8, bias=False))


def train_lora(model, steps: int = 5) -> None:
    optimizer = AdamW(parameter_groups(model, 0.1), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        next_token_loss(model, lm_batch(step)).backward()
        optimizer.step()


def test_only_the_adapter_is_saved_and_the_frozen_weights_never_change(tmp_path):
    model = random_gpt(vocab_size=30, block_size=8)
    pretrained = state_checksum(model)
    apply_lora(model, ["w_q", "w_v"], r=2)
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    frozen_before = {n: p.clone() for n, p in frozen.items()}
    train_lora(model)
    assert all(torch.equal(frozen[n], frozen_before[n]) for n in frozen)
    size = save_trainable(model, tmp_path / "adapter.pt")
    saved = torch.load(tmp_path / "adapter.pt", weights_only=True)
    assert sorted(saved) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert sum(t.numel() for t in saved.values()) == 4 * 2 * (16 + 16)
    assert size < 0.2 * sum(p.numel() * 4 for p in model.parameters())
    # a fresh copy of the pretrained model, adapted the same way, gets the trained adapter
    fresh = random_gpt(vocab_size=30, block_size=8)
    assert state_checksum(fresh) == pretrained
    apply_lora(fresh, ["w_q", "w_v"], r=2)
    assert load_trainable(fresh, tmp_path / "adapter.pt") == sorted(saved)
    idx = lm_batch(9)[0]
    torch.testing.assert_close(fresh(idx), model(idx))
    # and the trained model's frozen weights are the pretrained ones, bit for bit
    unwrapped = {
        n.replace(".base", ""): p for n, p in model.state_dict().items() if "lora_" not in n
    }
    reference = random_gpt(vocab_size=30, block_size=8)
    reference.load_state_dict(unwrapped)
    assert state_checksum(reference) == pretrained


def test_loading_checks_names_and_shapes(tmp_path):
    model = random_gpt(vocab_size=30, block_size=8)
    apply_lora(model, ["w_q"], r=2)
    save_trainable(model, tmp_path / "r2.pt")
    other = random_gpt(vocab_size=30, block_size=8)
    apply_lora(other, ["w_v"], r=2)
    with pytest.raises(ValueError, match="missing"):
        load_trainable(other, tmp_path / "r2.pt")
    wider = random_gpt(vocab_size=30, block_size=8)
    apply_lora(wider, ["w_q"], r=3)
    with pytest.raises(ValueError, match=r"the file holds \(2, 16\)"):
        load_trainable(wider, tmp_path / "r2.pt")
    with pytest.raises(ValueError, match="no trainable"):
        save_trainable(freeze(random_gpt(vocab_size=30, block_size=8)), tmp_path / "none.pt")


def test_the_checksum_sees_any_change():
    model = random_gpt(vocab_size=30, block_size=8)
    checksum = state_checksum(model)
    assert state_checksum(random_gpt(vocab_size=30, block_size=8)) == checksum
    with torch.no_grad():
        model.transformer.blocks[1].ffn.up.weight[3, 4] += 1e-6
    assert state_checksum(model) != checksum
    assert trainable_state(model) and all(
        not t.requires_grad for t in trainable_state(model).values()
    )


def test_training_memory_of_full_fine_tuning_and_of_lora():
    full = random_gpt(vocab_size=30, block_size=8)
    weights = 4 * count_parameters(full)
    memory = training_memory(full, next_token_loss, lm_batch(), AdamW(full.parameters()))
    assert memory["weights"] == weights
    assert memory["gradients"] == weights and memory["optimizer"] == 2 * weights
    assert memory["activations"] > 4 * 4 * 8 * 30  # the logits at least
    assert memory["total"] == sum(v for k, v in memory.items() if k != "total")
    lora = random_gpt(vocab_size=30, block_size=8)
    apply_lora(lora, ["w_q", "w_v"], r=2)
    trained = 4 * count_parameters(lora, trainable=True)
    memory = training_memory(lora, next_token_loss, lm_batch(), AdamW(parameter_groups(lora, 0.0)))
    assert memory["weights"] == weights + trained
    assert memory["gradients"] == trained and memory["optimizer"] == 2 * trained
