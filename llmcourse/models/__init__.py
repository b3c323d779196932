"""Models built from :mod:`llmcourse.modules`, and the model the course ships.

- :mod:`.gpt` -- the decoder-only :class:`GPT`, GPT-2 and Llama configurations, exact
  parameter counts.
- :mod:`.bert`, :mod:`.t5` -- the encoder-only and encoder-decoder models.
- :mod:`.base` -- what the three share: embeddings, output layer, initialisation.
- :mod:`.vit` -- images as patch sequences (Chapter 7).
- :mod:`.heads` -- task heads for fine-tuning a pretrained body (Chapter 9).
- :mod:`.pretrained` -- loading the shipped model (``weights/``) and its documented
  evaluation.
- :mod:`.objective_bodies` -- Chapter 9's GPT, BERT and T5 pretrained at equal compute,
  their card and fine-tuning table (imported as a module).
"""

from llmcourse.models.base import (
    TokenModel,
    init_weights,
)
from llmcourse.models.bert import (
    BERT,
    padding_mask_like,
)
from llmcourse.models.gpt import (
    GPT,
    gpt2_config,
    gpt_parameter_counts,
    llama_config,
)
from llmcourse.models.heads import (
    POOLINGS,
    FineTuner,
    SequenceClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    align_labels_to_subwords,
    best_span,
    encode_words,
    pool_hidden,
    span_qa_loss,
)
from llmcourse.models.pretrained import (
    CARD_FILE,
    CARD_FORMAT,
    MODEL_FILE,
    RECIPE,
    TOKENIZER_FILE,
    WEIGHTS_DIR,
    load_pretrained,
    model_card,
    model_directory,
    sha256,
    validation_losses,
)
from llmcourse.models.t5 import (
    T5,
)
from llmcourse.models.vit import (
    PatchEmbedding,
    ViT,
    patchify,
    unpatchify,
)

__all__ = [
    "BERT",
    "CARD_FILE",
    "CARD_FORMAT",
    "FineTuner",
    "GPT",
    "MODEL_FILE",
    "POOLINGS",
    "PatchEmbedding",
    "RECIPE",
    "SequenceClassificationHead",
    "SpanQAHead",
    "T5",
    "TOKENIZER_FILE",
    "TokenClassificationHead",
    "TokenModel",
    "ViT",
    "WEIGHTS_DIR",
    "align_labels_to_subwords",
    "best_span",
    "encode_words",
    "gpt2_config",
    "gpt_parameter_counts",
    "init_weights",
    "llama_config",
    "load_pretrained",
    "model_card",
    "model_directory",
    "padding_mask_like",
    "patchify",
    "pool_hidden",
    "sha256",
    "span_qa_loss",
    "unpatchify",
    "validation_losses",
]
