"""Pretraining objectives: what a model is asked to predict from its input.

- **Causal language modelling** (GPT, Radford et al., 2018): predict every next token
  from the tokens before it (:func:`next_token_loss`, a ``train`` loss function).
- **Masked language modelling** (BERT, Devlin et al., 2019): choose each ordinary token
  with probability ``p = 0.15``; of the chosen tokens, replace 80% by ``<mask>``, 10% by
  a random token and leave 10% unchanged; predict the original token at the chosen
  positions only (:func:`mask_tokens`). The labels are ``-100`` elsewhere, the
  ``ignore_index`` of :func:`torch.nn.functional.cross_entropy`.
- **Next-sentence prediction** (BERT): is sentence B the sentence that follows A in the
  document, or a random one? (:func:`next_sentence_pairs`).
- **Span corruption** (T5, Raffel et al., 2020): drop random spans of the input, put one
  sentinel token in place of each, and train an encoder-decoder to write the dropped
  spans, each after its sentinel (:func:`span_corruption`); :func:`fill_spans` undoes it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.data.batching import IGNORE_INDEX

Sentence = TypeVar("Sentence")


# ------------------------------------------------------------------ causal language model
def next_token_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean cross-entropy of ``model(inputs)`` against ``targets`` (a ``train`` loss_fn).

    ``batch = (inputs, targets)``, both ``(batch, time)``; ``model(inputs)`` returns
    ``(batch, time, vocab_size)`` logits.
    """
    inputs, targets = batch
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


# ------------------------------------------------------------------ masked language model
def _check_ids(ids: Tensor, name: str = "ids") -> None:
    if not isinstance(ids, Tensor) or ids.dtype != torch.long or ids.ndim == 0:
        raise ValueError(f"{name} must be a long tensor with at least one dimension, got {ids!r}")


def apply_masking(
    ids: Tensor,
    selected: Tensor,
    action: Tensor,
    replacement: Tensor,
    mask_id: int,
) -> tuple[Tensor, Tensor]:
    """BERT's 80/10/10 rule, given the random draws.

    Args:
        ids: ``(...)`` long, the original tokens.
        selected: ``(...)`` bool, True at the positions to predict.
        action: ``(...)`` float in [0, 1): a selected position becomes ``mask_id`` when
            ``action < 0.8``, ``replacement`` when ``0.8 <= action < 0.9``, and keeps its
            token when ``action >= 0.9``.
        replacement: ``(...)`` long, the random tokens.
        mask_id: the id of the mask token.

    Returns:
        ``(inputs, labels)``, both ``(...)`` long: the corrupted tokens, and the original
        tokens at the selected positions and :data:`IGNORE_INDEX` elsewhere.
    """
    _check_ids(ids)
    for name, tensor in (("selected", selected), ("action", action), ("replacement", replacement)):
        if tensor.shape != ids.shape:
            raise ValueError(
                f"{name} must have the shape of ids {tuple(ids.shape)}, got {tuple(tensor.shape)}"
            )
    if selected.dtype != torch.bool:
        raise TypeError(f"selected must be a bool tensor, got {selected.dtype}")
    inputs = ids.clone()
    inputs[selected & (action < 0.8)] = mask_id
    randomized = selected & (action >= 0.8) & (action < 0.9)
    inputs[randomized] = replacement[randomized]
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, labels


def mask_tokens(
    ids: Tensor,
    mask_id: int,
    vocab_size: int,
    special_ids: Collection[int] = (),
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt ``ids`` for masked language modelling with BERT's 15% and 80/10/10 rule.

    Every token that is not special is selected independently with probability ``p``;
    special tokens (padding, ``<cls>``, the mask itself ...) are never selected, and
    random replacements are drawn uniformly from the non-special ids. The draws, in
    order: ``torch.rand`` for the selection, ``torch.rand`` for the action, then
    ``torch.randint`` for the replacements, all of ``ids``' shape (see
    :func:`apply_masking`).

    Args:
        ids: ``(...)`` long token ids, each in ``[0, vocab_size)``.
        mask_id: the id of the mask token; it must be one of ``special_ids``.
        vocab_size: the number of token ids.
        special_ids: ids that are never selected nor drawn as replacements.
        p: the selection probability, in [0, 1].
        generator: the random number generator (None: torch's global one).

    Returns:
        ``(inputs, labels)``, both of ``ids``' shape: the model reads ``inputs`` and
        predicts ``labels`` where they are not :data:`IGNORE_INDEX`.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 8, 0]])
        >>> inputs, labels = mask_tokens(ids, mask_id=1, vocab_size=10, special_ids={0, 1},
        ...                              p=0.5, generator=torch.Generator().manual_seed(0))
        >>> inputs, labels
        (tensor([[1, 6, 6, 1, 0]]), tensor([[   5, -100,    7,    8, -100]]))
    """
    _check_ids(ids)
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be an integer >= 1, got {vocab_size!r}")
    specials = sorted(set(special_ids))
    if mask_id not in specials:
        raise ValueError(f"mask_id {mask_id} must be one of special_ids {specials}")
    if any(not 0 <= s < vocab_size for s in specials):
        raise ValueError(f"special_ids must lie in [0, vocab_size={vocab_size}), got {specials}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size={vocab_size})")
    is_special = torch.zeros(vocab_size, dtype=torch.bool)
    is_special[specials] = True
    ordinary = (~is_special).nonzero().flatten()
    if len(ordinary) == 0:
        raise ValueError("every id is special: there is nothing to mask or draw")
    selected = (torch.rand(ids.shape, generator=generator) < p) & ~is_special[ids]
    action = torch.rand(ids.shape, generator=generator)
    replacement = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)]
    return apply_masking(ids, selected, action, replacement, mask_id)


# ---------------------------------------------------------------- next-sentence prediction
def next_sentence_pairs(
    documents: Sequence[Sequence[Sentence]], seed: int = 0
) -> list[tuple[Sentence, Sentence, int]]:
    """Sentence pairs for next-sentence prediction, half of them true continuations.

    For every sentence A that has a successor in its document, B is that successor
    (label 1, "IsNext") with probability 1/2, else a sentence drawn uniformly from
    another document (label 0, "NotNext").

    Args:
        documents: each a sequence of sentences (token ids, or text), at least two
            documents.
        seed: the seed of the ``random.Random`` that makes the choices.

    Returns:
        ``(A, B, label)`` triples, in document and sentence order; A and B are the
        sentence objects given (not copies).
    """
    if isinstance(documents, str) or len(documents) < 2:
        raise ValueError("next-sentence pairs need at least two documents")
    if any(len(doc) == 0 for doc in documents):
        raise ValueError("every document needs at least one sentence")
    rng = random.Random(seed)
    pairs = []
    for d, document in enumerate(documents):
        for first, second in zip(document[:-1], document[1:], strict=True):
            if rng.random() < 0.5:
                pairs.append((first, second, 1))
            else:
                other = rng.randrange(len(documents) - 1)
                other += other >= d  # any document but this one
                pairs.append((first, rng.choice(documents[other]), 0))
    return pairs


# ---------------------------------------------------------------------- span corruption
def _random_segmentation(n: int, parts: int, generator: torch.Generator | None) -> list[int]:
    """``n`` split into ``parts`` positive lengths, uniformly over all such splits."""
    cuts = (torch.randperm(n - 1, generator=generator)[: parts - 1] + 1).sort().values.tolist()
    bounds = [0, *cuts, n]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def span_noise_mask(
    length: int,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Which positions of a sequence T5's span corruption drops: ``(length,)`` bool.

    As in T5: ``round(length * noise_density)`` noise tokens (at least 1, at most
    ``length - 1``) in ``round(noise / mean_span_length)`` spans (at least 1); the noise
    and the kept tokens are each split into that many positive runs, uniformly at random,
    and the runs alternate, kept first. So the noise density and the number of spans are
    exact, and the span lengths are random with the given mean.
    """
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density!r}")
    if not mean_span_length >= 1.0:
        raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length!r}")
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span_length), 1), n_noise, length - n_noise)
    noise_lengths = _random_segmentation(n_noise, n_spans, generator)
    kept_lengths = _random_segmentation(length - n_noise, n_spans, generator)
    mask = []
    for kept, noise in zip(kept_lengths, noise_lengths, strict=True):
        mask += [False] * kept + [True] * noise
    return torch.tensor(mask)


def corrupt_spans(
    ids: Tensor, noise_mask: Tensor, sentinel_ids: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """Replace each run of noise by the next sentinel; the targets list the runs.

    ``ids = [a, b, c, d, e, f]`` with noise at ``b, c`` and ``e`` gives the inputs
    ``[a, S0, d, S1, f]`` and the targets ``[S0, b, c, S1, e, S2]``: each sentinel then the
    tokens it hides, closed by one more sentinel (T5's ``<X> for inviting <Y> last <Z>``).

    Args:
        ids: ``(T,)`` long.
        noise_mask: ``(T,)`` bool, True at the dropped tokens.
        sentinel_ids: at least (number of noise runs + 1) ids, used in order.

    Returns:
        ``(inputs, targets)``, 1-D long tensors.
    """
    _check_ids(ids)
    if ids.ndim != 1 or noise_mask.shape != ids.shape or noise_mask.dtype != torch.bool:
        raise ValueError(
            f"ids must be 1-D and noise_mask a bool tensor of the same shape, got "
            f"{tuple(ids.shape)} and {noise_mask.dtype} {tuple(noise_mask.shape)}"
        )
    starts = noise_mask.clone()
    starts[1:] &= ~noise_mask[:-1]
    n_spans = int(starts.sum())
    if len(sentinel_ids) < n_spans + 1:
        raise ValueError(
            f"{n_spans} spans need {n_spans + 1} sentinel ids, got {len(sentinel_ids)}"
        )
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for token, noise, start in zip(ids.tolist(), noise_mask.tolist(), starts.tolist(), strict=True):
        if start:
            span += 1
            inputs.append(sentinel_ids[span])
            targets.append(sentinel_ids[span])
        (targets if noise else inputs).append(token)
    targets.append(sentinel_ids[n_spans])
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def span_corruption(
    ids: Tensor,
    sentinel_ids: Sequence[int],
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """T5's span corruption of one sequence: :func:`span_noise_mask` then :func:`corrupt_spans`.

    Args:
        ids: ``(T,)`` long, ``T >= 2``.
        sentinel_ids: the sentinel ids, at least one more than the number of spans.
        noise_density: the fraction of tokens dropped.
        mean_span_length: the mean length of a dropped span.
        generator: the random number generator (None: torch's global one).

    Returns:
        ``(encoder inputs, decoder targets)``, 1-D long tensors.
    """
    _check_ids(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    mask = span_noise_mask(len(ids), noise_density, mean_span_length, generator)
    return corrupt_spans(ids, mask, sentinel_ids)


def fill_spans(inputs: Tensor, targets: Tensor, sentinel_ids: Sequence[int]) -> Tensor:
    """Undo :func:`corrupt_spans`: put the tokens after each sentinel of ``targets`` in place
    of that sentinel in ``inputs``. Returns the original ``(T,)`` ids."""
    for name, tensor in (("inputs", inputs), ("targets", targets)):
        _check_ids(tensor, name)
    sentinels = set(sentinel_ids)
    spans: dict[int, list[int]] = {}
    current: int | None = None
    for token in targets.tolist():
        if token in sentinels:
            current = token
            spans[current] = []
        elif current is None:
            raise ValueError("targets must start with a sentinel")
        else:
            spans[current].append(token)
    filled: list[int] = []
    for token in inputs.tolist():
        if token in sentinels:
            if token not in spans:
                raise ValueError(f"sentinel {token} of the inputs is not in the targets")
            filled += spans[token]
        else:
            filled.append(token)
    return torch.tensor(filled, dtype=torch.long)
