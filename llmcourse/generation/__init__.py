"""Generation: turning next-token distributions into text.

- :mod:`.sampling` -- temperature, top-k and top-p, and drawing a token.
- :mod:`.generate` -- the one generation loop, with a key-value cache: :func:`greedy`,
  :func:`sample`.
- :mod:`.beam` -- beam search.
- :mod:`.speculative` -- speculative decoding with a draft model.
"""

from llmcourse.generation.beam import (
    Hypothesis,
    beam_search,
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
from llmcourse.generation.sampling import (
    apply_temperature,
    check_sampling_args,
    draw,
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
    "CachedModel",
    "Hypothesis",
    "SpeculativeResult",
    "acceptance_probability",
    "apply_temperature",
    "beam_search",
    "check_eos",
    "check_sampling_args",
    "context_size",
    "draw",
    "eval_no_grad",
    "greedy",
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
