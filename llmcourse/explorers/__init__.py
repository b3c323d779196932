"""Explorers: widgets that let a reader move a setting and watch a chapter's result change.

Each module holds the pure computation an explorer shows, tested without any widget,
and a builder ``explore_...`` that wraps it in an :class:`~.widget.Explorer` (controls
above an output that redraws, with a static picture of its state for the built book,
where no kernel runs).

- :mod:`.widget` -- the shared plumbing: :class:`Explorer`, :class:`Rendering`,
  :class:`Blitter`.
- :mod:`.attention` -- the attention weights of the shipped model per layer and head, for
  a sentence the reader types (Chapters 6 and 7).
- :mod:`.bpe_merges` -- byte-level BPE merges learned from the reader's text, stepped
  one at a time (Chapter 5).
- :mod:`.chat` -- one message to the instruction-tuned model: the chat template it reads,
  its reply (greedy or sampled) and the base model's continuation (Chapter 11).
- :mod:`.sampling` -- temperature, top-k, top-p and min-p on a next-token distribution
  (Chapter 8).
- :mod:`.scaling_fit` -- a scaling-law fit on the smallest budgets of a sweep,
  predicting the largest (Chapter 10).
- :mod:`.quantization` -- bits, block size and scheme of a quantizer against the error
  on a weight matrix (Chapter 13).
"""

from llmcourse.explorers.attention import (
    AttentionChart,
    AttentionView,
    HeadMaps,
    attention_label,
    attention_view,
    attention_weights,
    explore_attention,
)
from llmcourse.explorers.bpe_merges import (
    BPEStep,
    bpe_html,
    bpe_step,
    explore_bpe,
    segment,
    text_merges,
)
from llmcourse.explorers.chat import (
    ChatView,
    chat_html,
    chat_view,
    explore_chat,
    tokens_html,
)
from llmcourse.explorers.quantization import (
    QuantizationChart,
    QuantizationView,
    block_sizes,
    explore_quantization,
    group_levels,
    quantization_view,
)
from llmcourse.explorers.sampling import (
    SamplingChart,
    SamplingView,
    entropy_nats,
    explore_sampling,
    next_token_logits,
    sampling_view,
    token_label,
)
from llmcourse.explorers.scaling_fit import (
    BudgetFitChart,
    BudgetFitView,
    budget_fit_view,
    budgets_of,
    explore_scaling_fit,
    isoflop_budget,
)
from llmcourse.explorers.widget import (
    MIME_TYPES,
    WIDGET_VIEW,
    Blitter,
    Explorer,
    Rendering,
    figure_rendering,
    html_rendering,
)

__all__ = [
    "MIME_TYPES",
    "WIDGET_VIEW",
    "AttentionChart",
    "AttentionView",
    "BPEStep",
    "Blitter",
    "BudgetFitChart",
    "BudgetFitView",
    "Explorer",
    "HeadMaps",
    "QuantizationChart",
    "QuantizationView",
    "Rendering",
    "SamplingChart",
    "SamplingView",
    "attention_label",
    "attention_view",
    "attention_weights",
    "block_sizes",
    "bpe_html",
    "bpe_step",
    "budget_fit_view",
    "budgets_of",
    "entropy_nats",
    "explore_attention",
    "explore_bpe",
    "explore_quantization",
    "explore_sampling",
    "explore_scaling_fit",
    "figure_rendering",
    "group_levels",
    "html_rendering",
    "isoflop_budget",
    "next_token_logits",
    "quantization_view",
    "sampling_view",
    "segment",
    "text_merges",
    "token_label",
    "ChatView",
    "chat_html",
    "chat_view",
    "explore_chat",
    "tokens_html",
]
