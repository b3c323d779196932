"""Counting a Transformer's parameters and training FLOPs, as scaling laws count them.

Kaplan et al. (2020) measure model size by the **non-embedding parameters** ``N``: the
weights of the blocks (attention, feed-forward, norms), without the token embeddings,
the position table and an untied output layer. Embeddings are lookups, not
multiply-adds, and counting them makes the laws bend for small models, whose
embedding tables are a large share of their weights; without them, models of
different depths and widths fall on one curve. For a block of width ``d`` with a
``4d`` feed-forward network, ``N ~ 12 L d^2``.

Training costs about **6 FLOPs per parameter per token**: a matrix product with ``N``
weights takes ``2N`` FLOPs per token forward (a multiply and an add per weight) and
about twice that backward (the gradients of the activations and of the weights), so
``C ~ 6 N D`` for ``D`` training tokens. The closed form
:func:`training_flops_per_token` adds what ``6N`` leaves out and what matters at our
sizes: the output layer, ``6 V d`` (``V`` the vocabulary), and attention's scores and
weighted sums, ``12 L T d`` for a context ``T`` (two ``T x d`` products per layer,
forward, times three). :func:`counted_training_flops` checks it with PyTorch's
``FlopCounterMode`` on a real forward and backward pass.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from llmcourse.checks import check_int
from llmcourse.models.gpt import gpt_parameter_counts
from llmcourse.modules.attention import record_attention
from llmcourse.modules.transformer import TransformerConfig

EMBEDDING_PARTS = ("token embeddings", "positions", "output layer")


def non_embedding_parameters(config: TransformerConfig) -> int:
    """``N``: the parameters of ``GPT(config)`` without its embedding and position tables
    and its output layer (Kaplan et al.'s count)."""
    counts = gpt_parameter_counts(config)
    return counts["total"] - sum(counts[part] for part in EMBEDDING_PARTS)


def training_flops_per_token(config: TransformerConfig, context: int | None = None) -> dict:
    """The training FLOPs per token of ``GPT(config)`` reading windows of ``context``
    tokens (default ``block_size``), by part: ``"6N"`` for the blocks' matrices,
    ``"output layer"`` (``6 V d``), ``"attention"`` (``12 L T d``) and their ``"total"``.

    Norms, softmaxes and activations are left out, as in every such count: they are a
    few FLOPs per activation, not per weight."""
    context = config.block_size if context is None else check_int("context", context)
    d, layers = config.d_model, config.n_layers
    matrices = non_embedding_parameters(config) - gpt_parameter_counts(config)["norms"]
    biases = (
        layers * (2 * d + 2 * config.kv_heads * config.d_head + config.ffn_size + d)
        if config.bias and config.activation != "swiglu"
        else 0
    )
    parts = {
        "6N": 6 * (matrices - biases),
        "output layer": 6 * config.vocab_size * d,
        "attention": 12 * layers * context * d,
    }
    parts["total"] = sum(parts.values())
    return parts


def counted_training_flops(model: nn.Module, inputs: Tensor, loss_fn=None) -> int:
    """FLOPs of one forward and backward pass of ``model`` on ``inputs``, counted by
    ``torch.utils.flop_counter.FlopCounterMode``.

    Attention runs its written-out path (:func:`~llmcourse.modules.attention.
    record_attention`): the counter does not see PyTorch's fused CPU attention kernel,
    which does the same arithmetic. ``loss_fn(logits)`` gives the scalar to
    differentiate (default: the sum of the logits).
    """
    with record_attention(model), FlopCounterMode(display=False) as counter:
        logits = model(inputs)
        (logits.sum() if loss_fn is None else loss_fn(logits)).backward()
    return counter.get_total_flops()
