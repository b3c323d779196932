"""Generation: turning next-token distributions into text.

- :mod:`.sampling` -- temperature, top-k, top-p and min-p, the repetition penalty, and
  drawing a token.
- :mod:`.generate` -- the one generation loop, with a key-value cache: :func:`greedy`,
  :func:`sample`.
- :mod:`.beam` -- beam search and its length normalizers.
- :mod:`.speculative` -- speculative decoding with a draft model.
- :mod:`.metrics` -- corpus BLEU and chrF of generated text against references.
"""

from llmcourse.generation.beam import (
    LENGTH_FORMS,
    Hypothesis,
    beam_search,
    length_normalizer,
)
from llmcourse.generation.generate import (
    CachedModel,
    check_eos,
    context_size,
    eval_no_grad,
    greedy,
    model_logits,
    sample,
    supports_cache,
)
from llmcourse.generation.metrics import (
    BLEUScore,
    corpus_bleu,
    corpus_chrf,
)
from llmcourse.generation.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    check_sampling_args,
    draw,
    min_p_filter,
    process_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
)
from llmcourse.generation.speculative import (
    SpeculativeResult,
    acceptance_probability,
    residual_distribution,
    speculative_greedy,
    speculative_sample,
    verify,
)

__all__ = [
    "BLEUScore",
    "CachedModel",
    "Hypothesis",
    "LENGTH_FORMS",
    "SpeculativeResult",
    "acceptance_probability",
    "apply_repetition_penalty",
    "apply_temperature",
    "beam_search",
    "check_eos",
    "check_sampling_args",
    "context_size",
    "corpus_bleu",
    "corpus_chrf",
    "draw",
    "eval_no_grad",
    "greedy",
    "length_normalizer",
    "min_p_filter",
    "model_logits",
    "process_logits",
    "residual_distribution",
    "sample",
    "sample_next",
    "speculative_greedy",
    "speculative_sample",
    "supports_cache",
    "top_k_filter",
    "top_p_filter",
    "verify",
]
