"""Alignment: learning from preferences and rewards (Chapter 12).

- :mod:`.logprobs` -- per-token log-probabilities of responses, masked means and sums,
  entropy.
- :mod:`.preferences` -- the Bradley-Terry model, simulated annotators, the reward
  model's pairwise loss.
- :mod:`.advantages` -- baselines and normalised advantages, GRPO's group advantages,
  generalised advantage estimation.
- :mod:`.losses` -- REINFORCE, PPO's clipped surrogate and value loss, KL estimators,
  DPO.
"""

from llmcourse.alignment.advantages import (
    gae,
    group_advantages,
    whiten,
)
from llmcourse.alignment.logprobs import (
    check_mask_like,
    gather_logprobs,
    masked_mean,
    masked_sum,
    response_logprobs,
    sequence_logprob,
    token_entropy,
)
from llmcourse.alignment.losses import (
    KL_ESTIMATORS,
    REDUCTIONS,
    dpo_loss,
    kl_estimate,
    policy_gradient_loss,
    ppo_clipped_loss,
    reduce_tokens,
    value_loss,
)
from llmcourse.alignment.preferences import (
    noise_ceiling,
    pairwise_loss,
    preference_probability,
    sample_preferences,
)

__all__ = [
    "KL_ESTIMATORS",
    "REDUCTIONS",
    "check_mask_like",
    "dpo_loss",
    "gae",
    "gather_logprobs",
    "group_advantages",
    "kl_estimate",
    "masked_mean",
    "masked_sum",
    "noise_ceiling",
    "pairwise_loss",
    "policy_gradient_loss",
    "ppo_clipped_loss",
    "preference_probability",
    "reduce_tokens",
    "response_logprobs",
    "sample_preferences",
    "sequence_logprob",
    "token_entropy",
    "value_loss",
    "whiten",
]
