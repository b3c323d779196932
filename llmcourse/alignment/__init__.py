"""Alignment: learning from preferences and rewards (Chapter 12).

- :mod:`.logprobs` -- per-token log-probabilities of responses, masked means and sums,
  entropy.
- :mod:`.preferences` -- the Bradley-Terry model, simulated annotators, the reward
  model's pairwise loss.
- :mod:`.advantages` -- baselines and normalised advantages, GRPO's group advantages,
  generalised advantage estimation.
- :mod:`.losses` -- REINFORCE, PPO's clipped surrogate and value loss, KL estimators,
  DPO.
- :mod:`.reward_model` -- reward and value models: a GPT's Transformer with a scalar head;
  a reward model as a reward function of rollouts.
- :mod:`.rollout` -- responses sampled from a policy, packed into one padded batch.
- :mod:`.pairs` -- preference pairs; the reward model's and DPO's losses on them.
- :mod:`.policy_optimization` -- one step of REINFORCE, PPO or GRPO: rollout, score,
  advantages, update (with gradient accumulation); evaluating a policy.

Imported as modules: :mod:`.gold` (the gold reward behind the simulated annotators),
:mod:`.prompts` (the chapter's task prompts) and :mod:`.results` (the shipped reward
model and runs of ``recipes/rlhf_small.py``).
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
from llmcourse.alignment.pairs import (
    PreferencePairs,
    dpo_pair_loss,
    pair_logprobs,
    pair_rewards,
    pairs_from_rollout,
    reward_model_loss,
)
from llmcourse.alignment.policy_optimization import (
    BASELINES,
    METHODS,
    Experience,
    RLConfig,
    collect_experience,
    evaluate_policy,
    last_token_index,
    rl_step,
    sequence_rewards,
    token_rewards,
    update_policy,
)
from llmcourse.alignment.preferences import (
    noise_ceiling,
    pairwise_loss,
    preference_probability,
    sample_preferences,
)
from llmcourse.alignment.reward_model import (
    ScalarModel,
    check_lengths,
    reward_fn,
)
from llmcourse.alignment.rollout import (
    Rollout,
    sample_rollout,
    sequence_lengths,
)

__all__ = [
    "BASELINES",
    "Experience",
    "KL_ESTIMATORS",
    "METHODS",
    "PreferencePairs",
    "REDUCTIONS",
    "RLConfig",
    "Rollout",
    "ScalarModel",
    "check_lengths",
    "check_mask_like",
    "collect_experience",
    "dpo_loss",
    "dpo_pair_loss",
    "evaluate_policy",
    "gae",
    "gather_logprobs",
    "group_advantages",
    "kl_estimate",
    "last_token_index",
    "masked_mean",
    "masked_sum",
    "noise_ceiling",
    "pair_logprobs",
    "pair_rewards",
    "pairs_from_rollout",
    "pairwise_loss",
    "policy_gradient_loss",
    "ppo_clipped_loss",
    "preference_probability",
    "reduce_tokens",
    "response_logprobs",
    "reward_fn",
    "reward_model_loss",
    "rl_step",
    "sample_preferences",
    "sample_rollout",
    "sequence_lengths",
    "sequence_logprob",
    "sequence_rewards",
    "token_entropy",
    "token_rewards",
    "update_policy",
    "value_loss",
    "whiten",
]
