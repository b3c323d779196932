"""Prompting and instruction tuning: using a trained model without changing it, and
teaching it to follow instructions (Chapter 11).

- :mod:`.chat` -- the chat template of the instruction-tuned model, dialogues, and the
  assistant-only loss mask of supervised fine-tuning.
- :mod:`.chat_session` -- a conversation with a chat model, and a JupyterLab chat box.
- :mod:`.fewshot` -- zero-, one- and few-shot prompts, their formats, chains of thought.
- :mod:`.scoring` -- exact-match scoring of many answers in one forward pass, and
  generation on prompts grouped by length.
- :mod:`.voting` -- majority votes: self-consistency, prompt ensembling.
- :mod:`.kmeans`, :mod:`.autocot` -- k-means, and Auto-CoT's demonstrations.
- :mod:`.ensembles` -- model ensembles, cascades, weak-to-strong.
"""

from llmcourse.prompting.autocot import (
    cluster_questions,
    construct_demonstrations,
)
from llmcourse.prompting.chat import (
    END,
    ROLE_TOKENS,
    ROLES,
    check_dialogue,
    dialogue_ids,
    encode_dialogue,
    format_dialogue,
    reply_text,
    sft_batch,
    sft_example,
    task_dialogue,
    task_message,
)
from llmcourse.prompting.chat_session import (
    ChatSession,
    chat_widget,
)
from llmcourse.prompting.ensembles import (
    CascadeResult,
    cascade,
    ensemble_log_probs,
    ensemble_loss,
    gap_recovered,
)
from llmcourse.prompting.fewshot import (
    FORMATS,
    STEP_BY_STEP,
    PromptFormat,
    answer_text,
    demonstration,
    expected_completion,
    few_shot_prompt,
    parse_answer,
)
from llmcourse.prompting.kmeans import (
    KMeansResult,
    kmeans,
    kmeans_plus_plus,
    squared_distances,
)
from llmcourse.prompting.scoring import (
    CompletionScore,
    encode_pairs,
    generate_completions,
    score_completions,
)
from llmcourse.prompting.voting import (
    majority_vote,
    vote_accuracy,
)

__all__ = [
    "END",
    "FORMATS",
    "ROLES",
    "ROLE_TOKENS",
    "STEP_BY_STEP",
    "CascadeResult",
    "ChatSession",
    "CompletionScore",
    "KMeansResult",
    "PromptFormat",
    "answer_text",
    "cascade",
    "chat_widget",
    "check_dialogue",
    "cluster_questions",
    "construct_demonstrations",
    "demonstration",
    "dialogue_ids",
    "encode_dialogue",
    "encode_pairs",
    "ensemble_log_probs",
    "ensemble_loss",
    "expected_completion",
    "few_shot_prompt",
    "format_dialogue",
    "gap_recovered",
    "generate_completions",
    "kmeans",
    "kmeans_plus_plus",
    "majority_vote",
    "parse_answer",
    "reply_text",
    "score_completions",
    "sft_batch",
    "sft_example",
    "squared_distances",
    "task_dialogue",
    "task_message",
    "vote_accuracy",
]
