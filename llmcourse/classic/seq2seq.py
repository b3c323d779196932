"""Sequence-to-sequence models: a GRU encoder-decoder, with or without attention.

An encoder reads the source ``x_1 .. x_n`` into hidden states ``h^e_1 .. h^e_n``; a
decoder then models the target one token at a time,

    p(y | x) = prod_t p(y_t | y_1 .. y_{t-1}, x),

with a recurrent state ``h^d_t = g(y_{t-1}, h^d_{t-1}, c_t)`` that starts from the
encoder's last state, ``h^d_0 = h^e_n``. What the decoder knows about the source is
the context vector ``c_t``:

- without attention (Cho et al., 2014; Sutskever et al., 2014), ``c_t = h^e_n`` at every
  step: one fixed vector must hold the whole source, a bottleneck;
- with attention (Bahdanau et al., 2015), each step scores every encoder state against
  the previous decoder state, ``s_tj = score(h^d_{t-1}, h^e_j)``, turns the scores into
  weights ``a_tj = softmax_j(s_tj)`` over the real (unpadded) source positions, and
  reads ``c_t = sum_j a_tj h^e_j``. The score here is a dot product ``h^d . h^e``
  (:class:`DotAttention`), a bilinear form ``h^d W h^e`` with a trained ``W``
  (:class:`BilinearAttention`), two of the scores compared by Luong et al. (2015), or
  Bahdanau et al.'s small feed-forward network ``v . tanh(W_q h^d + W_k h^e)``
  (:class:`AdditiveAttention`).

The output distribution is a linear layer on ``[h^d_t; c_t]``. Training uses teacher
forcing (:meth:`Seq2Seq.forward`: the decoder reads the gold previous token);
inference feeds the model its own predictions (:meth:`Seq2Seq.greedy_decode`).

The recurrent layers are PyTorch's fused ``nn.GRU``; Chapter 3 builds recurrent cells
from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.checks import embedding_lookup, on_host

ATTENTIONS = (None, "dot", "bilinear", "additive")


def _check_mask(mask: torch.Tensor, shape: tuple[int, int]) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(f"the mask must be a bool tensor, got {mask.dtype}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"the mask must have shape {shape}, got {tuple(mask.shape)}")
    if on_host(mask) and not mask.any(dim=-1).all():
        raise ValueError("every row of the mask needs at least one True (unmasked) position")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` over the last dimension, restricted to where ``mask`` is True.

    Args:
        scores: ``(..., src_len)`` real scores.
        mask: bool, the same shape; False marks positions (padding) that get weight
            exactly 0. Every row needs at least one True.

    Returns:
        ``(..., src_len)`` weights that sum to 1 over the unmasked positions.
    """
    _check_mask(mask, tuple(scores.shape))
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def _check_query_keys(query: torch.Tensor, keys: torch.Tensor) -> None:
    if query.ndim != 2 or keys.ndim != 3 or query.shape[0] != keys.shape[0]:
        raise ValueError(
            "expected query (batch, d_query) and keys (batch, src_len, d_key), got "
            f"{tuple(query.shape)} and {tuple(keys.shape)}"
        )


class DotAttention(nn.Module):
    """Dot-product attention: ``score(q, k_j) = q . k_j``, no parameters.

    The query is the previous decoder state and the keys (also the values) are the
    encoder states, so both must have the same size.
    """

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``query: (batch, d)``, ``keys: (batch, src_len, d)`` -> ``(batch, src_len)``."""
        _check_query_keys(query, keys)
        if query.shape[-1] != keys.shape[-1]:
            raise ValueError(
                f"dot attention needs queries and keys of one size, got {query.shape[-1]} "
                f"and {keys.shape[-1]}"
            )
        # A broadcast product and a sum: on a CPU much faster than bmm for one query.
        return (keys * query.unsqueeze(1)).sum(dim=-1)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` over ``keys``.

        Args:
            query: ``(batch, d_query)``, the previous decoder state ``h^d_{t-1}``.
            keys: ``(batch, src_len, d_key)``, the encoder states ``h^e_j``.
            mask: ``(batch, src_len)`` bool, True at real source tokens.

        Returns:
            ``context: (batch, d_key)``, the weighted sum of the keys, and
            ``weights: (batch, src_len)``, 0 at masked positions, summing to 1.
        """
        weights = masked_softmax(self.score(query, keys), mask)
        context = (weights.unsqueeze(-1) * keys).sum(dim=1)
        return context, weights


class BilinearAttention(DotAttention):
    """Bilinear attention: ``score(q, k_j) = q W k_j`` with a trained ``W: (d_query, d_key)``.

    ``W`` starts at the identity (plus small noise), where the score is the dot product;
    unlike the dot product, the two sizes may differ.
    """

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        for name, value in (("query_size", query_size), ("key_size", key_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.weight = nn.Parameter(
            torch.eye(query_size, key_size) + 0.01 * torch.randn(query_size, key_size)
        )

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``query: (batch, d_query)``, ``keys: (batch, src_len, d_key)`` -> ``(batch, src_len)``.

        Computed as the dot product of ``q W`` with each key.
        """
        _check_query_keys(query, keys)
        if (query.shape[-1], keys.shape[-1]) != tuple(self.weight.shape):
            raise ValueError(
                f"this bilinear attention takes queries of size {self.weight.shape[0]} and "
                f"keys of size {self.weight.shape[1]}, got {query.shape[-1]} and {keys.shape[-1]}"
            )
        return super().score(query @ self.weight, keys)


class AdditiveAttention(DotAttention):
    """Additive attention (Bahdanau et al., 2015): ``score(q, k_j) = v . tanh(W_q q + W_k k_j)``.

    A one-hidden-layer network scores each key against the query: ``W_q: (hidden,
    d_query)`` and ``W_k: (hidden, d_key)`` project both into ``hidden`` dimensions,
    where they are added, and ``v: (hidden,)`` reads the tanh of the sum. The sizes of
    queries and keys may differ. ``hidden * (d_query + d_key + 1)`` parameters.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int) -> None:
        super().__init__()
        for name, value in (
            ("query_size", query_size),
            ("key_size", key_size),
            ("hidden_size", hidden_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)  # W_q
        self.key_proj = nn.Linear(key_size, hidden_size, bias=False)  # W_k
        self.v = nn.Parameter(torch.empty(hidden_size).uniform_(-1, 1) / hidden_size**0.5)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``query: (batch, d_query)``, ``keys: (batch, src_len, d_key)`` -> ``(batch, src_len)``.

        Computed as ``tanh(W_k k_j + W_q q) . v`` for all keys at once.
        """
        _check_query_keys(query, keys)
        sizes = (self.query_proj.in_features, self.key_proj.in_features)
        if (query.shape[-1], keys.shape[-1]) != sizes:
            raise ValueError(
                f"this additive attention takes queries of size {sizes[0]} and keys of size "
                f"{sizes[1]}, got {query.shape[-1]} and {keys.shape[-1]}"
            )
        hidden = torch.tanh(self.key_proj(keys) + self.query_proj(query).unsqueeze(1))
        return hidden @ self.v  # (batch, src_len, hidden) @ (hidden,)


@dataclass
class Seq2SeqConfig:
    """Sizes, attention type and special token ids of a :class:`Seq2Seq` model.

    Attributes:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        emb_size: size of the token embeddings.
        hidden_size: size of the encoder's and the decoder's GRU states.
        attention: ``None`` (fixed context: the encoder's last state), ``"dot"``,
            ``"bilinear"`` or ``"additive"`` (its hidden layer has ``hidden_size`` units).
        bos_id, eos_id, pad_id: target ids of ``<s>``, ``</s>`` and ``<pad>``.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    emb_size: int = 32
    hidden_size: int = 64
    attention: str | None = None
    bos_id: int = 2
    eos_id: int = 3
    pad_id: int = 0

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "emb_size", "hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        for name in ("bos_id", "eos_id", "pad_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.tgt_vocab_size:
                raise ValueError(
                    f"{name} must be an id in [0, {self.tgt_vocab_size}), got {value!r}"
                )


def _check_ids(name: str, ids: torch.Tensor) -> None:
    if ids.ndim != 2 or ids.dtype != torch.long or ids.shape[1] == 0:
        raise ValueError(
            f"{name} must be a (batch, length >= 1) long tensor, got {ids.dtype} {tuple(ids.shape)}"
        )


class Encoder(nn.Module):
    """Embeddings and a one-layer GRU over the source.

    The source is right-padded; since the GRU runs left to right, the states of the
    real tokens never see the padding, and the last real state is the summary.
    """

    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size)
        self.rnn = nn.GRU(emb_size, hidden_size, batch_first=True)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``src: (batch, src_len)`` ids, ``src_mask: (batch, src_len)`` bool (right padding).

        Returns:
            ``states: (batch, src_len, hidden)``, the ``h^e_j`` (meaningless past the end
            of a sentence; the mask hides them), and ``final: (batch, hidden)``, the
            state at each sentence's last real token.
        """
        _check_ids("src", src)
        _check_mask(src_mask, tuple(src.shape))
        if on_host(src_mask) and (src_mask[:, 1:] & ~src_mask[:, :-1]).any():
            raise ValueError("src_mask must be right padding: True positions first in each row")
        states, _ = self.rnn(embedding_lookup(self.embed, src, "src"))
        last = src_mask.sum(dim=1) - 1
        final = states[torch.arange(src.shape[0], device=src.device), last]
        return states, final


class Decoder(nn.Module):
    """A GRU that reads the previous token and a context vector at every step.

    Args:
        vocab_size, emb_size, hidden_size: as in :class:`Seq2SeqConfig`.
        attention: a :class:`DotAttention`, :class:`BilinearAttention` or
            :class:`AdditiveAttention` module, or None to use the encoder's last state
            as the context at every step.
    """

    def __init__(
        self, vocab_size: int, emb_size: int, hidden_size: int, attention: nn.Module | None
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_size)
        self.rnn = nn.GRU(emb_size + hidden_size, hidden_size, batch_first=True)
        self.attention = attention
        self.out = nn.Linear(2 * hidden_size, vocab_size)

    def _advance(
        self,
        prev_emb: torch.Tensor,
        state: torch.Tensor,
        enc_states: torch.Tensor,
        enc_final: torch.Tensor,
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``h^d_t = g(y_{t-1}, h^d_{t-1}, c_t)``: returns ``h^d_t``, ``c_t`` and the weights."""
        if self.attention is None:
            context, weights = enc_final, None
        else:
            context, weights = self.attention(state, enc_states, src_mask)
        x = torch.cat([prev_emb, context], dim=-1).unsqueeze(1)
        _, state = self.rnn(x, state.unsqueeze(0))
        return state.squeeze(0), context, weights

    def step(
        self,
        prev: torch.Tensor,
        state: torch.Tensor,
        enc_states: torch.Tensor,
        enc_final: torch.Tensor,
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder step.

        Args:
            prev: ``(batch,)`` the previous target token ``y_{t-1}``.
            state: ``(batch, hidden)`` the previous decoder state ``h^d_{t-1}``.
            enc_states, enc_final, src_mask: the :class:`Encoder`'s outputs and the mask.

        Returns:
            ``logits: (batch, vocab)`` for ``y_t``, the new state ``h^d_t: (batch, hidden)``
            and the attention weights ``(batch, src_len)`` (None without attention).
        """
        state, context, weights = self._advance(
            self.embed(prev), state, enc_states, enc_final, src_mask
        )
        return self.out(torch.cat([state, context], dim=-1)), state, weights

    def forward(
        self,
        tgt_in: torch.Tensor,
        enc_states: torch.Tensor,
        enc_final: torch.Tensor,
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run every step on the given previous tokens (teacher forcing).

        The same computation as calling :meth:`step` in a loop, organised to be fast:
        the embeddings and the output layer are applied to all steps at once.

        Args:
            tgt_in: ``(batch, tgt_len)`` previous tokens, starting with ``<s>``.
            enc_states, enc_final, src_mask: the :class:`Encoder`'s outputs and the mask;
                ``enc_final`` is also the initial state ``h^d_0``.

        Returns:
            ``logits: (batch, tgt_len, vocab)`` and the attention weights
            ``(batch, tgt_len, src_len)``, or None without attention.
        """
        _check_ids("tgt_in", tgt_in)
        if tgt_in.shape[0] != enc_final.shape[0]:
            raise ValueError(
                f"tgt_in has {tgt_in.shape[0]} rows but the source has {enc_final.shape[0]}"
            )
        emb = embedding_lookup(self.embed, tgt_in, "tgt_in")
        if self.attention is None:
            # The context is the same at every step, so the GRU can run over the whole
            # sequence in one fused call.
            contexts = enc_final.unsqueeze(1).expand(-1, tgt_in.shape[1], -1)
            states, _ = self.rnn(torch.cat([emb, contexts], dim=-1), enc_final.unsqueeze(0))
            weights = None
        else:
            # Step t needs h^d_{t-1} to compute its context: one step at a time.
            state, step_states, step_contexts, step_weights = enc_final, [], [], []
            for t in range(tgt_in.shape[1]):
                state, context, w = self._advance(emb[:, t], state, enc_states, enc_final, src_mask)
                step_states.append(state)
                step_contexts.append(context)
                step_weights.append(w)
            states, contexts = torch.stack(step_states, 1), torch.stack(step_contexts, 1)
            weights = torch.stack(step_weights, 1)
        return self.out(torch.cat([states, contexts], dim=-1)), weights


class Seq2Seq(nn.Module):
    """An encoder-decoder translation model (see the module docstring)."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        attention = {
            None: None,
            "dot": DotAttention(),
            "bilinear": BilinearAttention(c.hidden_size, c.hidden_size),
        }.get(c.attention)
        if c.attention == "additive":  # built only when asked: the others draw no extra numbers
            attention = AdditiveAttention(c.hidden_size, c.hidden_size, c.hidden_size)
        self.encoder = Encoder(c.src_vocab_size, c.emb_size, c.hidden_size)
        self.decoder = Decoder(c.tgt_vocab_size, c.emb_size, c.hidden_size, attention)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: the decoder reads the gold previous tokens.

        Args:
            src: ``(batch, src_len)`` source ids.
            src_mask: ``(batch, src_len)`` bool, True at real tokens (right padding).
            tgt_in: ``(batch, tgt_len)`` target ids, starting with ``<s>``.

        Returns:
            ``(batch, tgt_len, tgt_vocab)`` logits; step ``t`` predicts the token after
            ``tgt_in[:, t]`` and depends only on ``tgt_in[:, :t + 1]``.
        """
        enc_states, enc_final = self.encoder(src, src_mask)
        logits, _ = self.decoder(tgt_in, enc_states, enc_final, src_mask)
        return logits

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode without teacher forcing: feed back the most probable token at each step.

        Decoding starts from ``<s>`` and stops when every sentence has produced ``</s>``
        or after ``max_len`` tokens; a sentence's tokens after its ``</s>`` are ``<pad>``.

        Args:
            src, src_mask: as in :meth:`forward`.
            max_len: the largest number of tokens to generate, >= 1.

        Returns:
            ``tokens: (batch, steps)`` with ``steps <= max_len``, ``</s>`` included, and
            the attention weights ``(batch, steps, src_len)`` (zero after ``</s>``), or
            None for a model without attention.
        """
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1, got {max_len!r}")
        c = self.config
        enc_states, enc_final = self.encoder(src, src_mask)
        state = enc_final
        prev = torch.full((src.shape[0],), c.bos_id, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, state, step_weights = self.decoder.step(
                prev, state, enc_states, enc_final, src_mask
            )
            prev = logits.argmax(dim=-1).masked_fill(finished, c.pad_id)
            tokens.append(prev)
            if step_weights is not None:
                weights.append(step_weights.masked_fill(finished.unsqueeze(-1), 0.0))
            finished |= prev == c.eos_id
            if finished.all():
                break
        return torch.stack(tokens, dim=1), torch.stack(weights, dim=1) if weights else None


def translation_loss(model: Seq2Seq, batch) -> torch.Tensor:
    """Mean cross-entropy of the teacher-forced predictions over the real target tokens.

    ``batch`` has ``src``, ``src_mask``, ``tgt_in`` and ``tgt_out`` (for example a
    :class:`llmcourse.data.translation.Batch`); positions where ``tgt_out`` is
    ``<pad>`` are ignored.
    """
    logits = model(batch.src, batch.src_mask, batch.tgt_in)
    return F.cross_entropy(
        logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=model.config.pad_id
    )


def decode_accuracy(
    predicted: torch.Tensor, reference: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sentence token accuracy and exact match of decoded sentences.

    Args:
        predicted: ``(batch, steps)`` decoded ids, e.g. from :meth:`Seq2Seq.greedy_decode`.
        reference: ``(batch, ref_len)`` gold ids ending with ``</s>`` and padded with
            ``pad_id`` (a batch's ``tgt_out``).
        pad_id: the padding id.

    Returns:
        ``token_accuracy: (batch,)`` float, the fraction of the reference's tokens
        (``</s>`` included) that the prediction has at the same position, and
        ``exact: (batch,)`` bool, True when all of them match, so that the prediction
        is the reference up to and including its ``</s>``.
    """
    if predicted.ndim != 2 or reference.ndim != 2 or predicted.shape[0] != reference.shape[0]:
        raise ValueError(
            "predicted and reference must be (batch, length) with the same batch, got "
            f"{tuple(predicted.shape)} and {tuple(reference.shape)}"
        )
    real = reference != pad_id
    if not real.any(dim=1).all():
        raise ValueError("every reference needs at least one token that is not padding")
    aligned = torch.full_like(reference, -1)  # never equal to a real token
    n = min(reference.shape[1], predicted.shape[1])
    aligned[:, :n] = predicted[:, :n]
    correct = (aligned == reference) & real
    return correct.sum(1) / real.sum(1), correct.sum(1) == real.sum(1)
