"""Training: the shared loop and the pieces it is made of.

- :mod:`.loop` -- :func:`train`, the default loop every chapter that trains uses.
- :mod:`.optim` -- :class:`AdamW` and :func:`clip_grad_norm` written out, and the
  parameter groups (weight decay on matrices only).
- :mod:`.schedule` -- warmup and cosine decay.
- :mod:`.step` -- one step: learning rate, gradient accumulation, clipping and update,
  bf16 autocast; the pieces of a chapter's own loop (PPO, DPO, LoRA).
- :mod:`.evaluate`, :mod:`.log`, :mod:`.checkpoint` -- evaluation, the history and
  JSON-lines log, atomic checkpoints with an exact resume.
- :mod:`.distributed` -- data parallelism under ``torchrun`` (imported as a module).
- :mod:`.objectives` -- pretraining objectives: causal LM, masked LM, next-sentence
  pairs, span corruption.
- :mod:`.objective_batches` -- the three objectives' batches and losses on the same
  sentence pairs, BERT with its NSP layer (Chapter 9; imported as a module).
- :mod:`.finetuning` -- fine-tuning tasks (examples as ids, head, loss, metric) and
  freezing regimes (Chapter 9; imported as a module).
"""

from llmcourse.training import distributed
from llmcourse.training.checkpoint import (
    CHECKPOINT_FORMAT,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from llmcourse.training.evaluate import (
    evaluate,
    stream_loss,
    unigram_loss,
)
from llmcourse.training.log import (
    History,
    experiment_log,
    read_log,
    write_record,
)
from llmcourse.training.loop import (
    BAR_FORMAT,
    train,
)
from llmcourse.training.objectives import (
    apply_masking,
    corrupt_spans,
    fill_spans,
    mask_tokens,
    next_sentence_pairs,
    next_token_loss,
    span_corruption,
    span_noise_mask,
)
from llmcourse.training.optim import (
    EMBEDDING_TABLES,
    AdamW,
    clip_grad_norm,
    parameter_groups,
)
from llmcourse.training.schedule import (
    SCHEDULES,
    lr_at,
)
from llmcourse.training.step import (
    PRECISIONS,
    accumulate_gradients,
    optimizer_step,
    precision_context,
    set_learning_rate,
)

__all__ = [
    "AdamW",
    "BAR_FORMAT",
    "CHECKPOINT_FORMAT",
    "EMBEDDING_TABLES",
    "History",
    "PRECISIONS",
    "SCHEDULES",
    "accumulate_gradients",
    "apply_masking",
    "check_resumable",
    "clip_grad_norm",
    "corrupt_spans",
    "distributed",
    "evaluate",
    "experiment_log",
    "fill_spans",
    "load_checkpoint",
    "lr_at",
    "mask_tokens",
    "next_sentence_pairs",
    "next_token_loss",
    "optimizer_step",
    "parameter_groups",
    "precision_context",
    "read_log",
    "rng_state",
    "save_checkpoint",
    "set_learning_rate",
    "set_rng_state",
    "span_corruption",
    "span_noise_mask",
    "stream_loss",
    "train",
    "unigram_loss",
    "write_record",
]
