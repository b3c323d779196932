"""Language models before the Transformer, built from scratch.

- :mod:`.ngram` -- n-gram models with add-k and Kneser-Ney smoothing (Chapter 1).
- :mod:`.neural_lm`, :mod:`.word2vec` -- the fixed-window neural LM and skip-gram word
  vectors (Chapter 2).
- :mod:`.rnn`, :mod:`.rnn_models` -- RNN and LSTM cells and layers, and the language
  model, classifier and tagger built on them (Chapter 3).
- :mod:`.seq2seq` -- a GRU encoder-decoder with dot and bilinear attention (Chapter 4).
"""

from llmcourse.classic.neural_lm import (
    FixedWindowLM,
    cross_entropy,
    parameter_count,
    perplexity,
    windows,
)
from llmcourse.classic.ngram import (
    SMOOTHINGS,
    NGramLM,
    ngrams,
    pad,
)
from llmcourse.classic.rnn import (
    LSTM,
    NONLINEARITIES,
    RNN,
    LSTMCell,
    RNNCell,
)
from llmcourse.classic.rnn_interop import (
    from_torch,
    load_torch_weights,
    torch_parameter_name,
)
from llmcourse.classic.rnn_models import (
    CELLS,
    POOLINGS,
    RNNLanguageModel,
    SequenceClassifier,
    SequenceTagger,
    final_states,
    mean_pool,
    recurrent_layer,
    sequence_cross_entropy,
)
from llmcourse.classic.seq2seq import (
    ATTENTIONS,
    BilinearAttention,
    Decoder,
    DotAttention,
    Encoder,
    Seq2Seq,
    Seq2SeqConfig,
    decode_accuracy,
    masked_softmax,
    translation_loss,
)
from llmcourse.classic.word2vec import (
    SkipGram,
    cosine_similarity_matrix,
    nearest,
    noise_distribution,
    sample_negatives,
    skipgram_pairs,
)

__all__ = [
    "ATTENTIONS",
    "BilinearAttention",
    "CELLS",
    "Decoder",
    "DotAttention",
    "Encoder",
    "FixedWindowLM",
    "LSTM",
    "LSTMCell",
    "NGramLM",
    "NONLINEARITIES",
    "POOLINGS",
    "RNN",
    "RNNCell",
    "RNNLanguageModel",
    "SMOOTHINGS",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceClassifier",
    "SequenceTagger",
    "SkipGram",
    "cosine_similarity_matrix",
    "cross_entropy",
    "decode_accuracy",
    "final_states",
    "from_torch",
    "load_torch_weights",
    "masked_softmax",
    "mean_pool",
    "nearest",
    "ngrams",
    "noise_distribution",
    "pad",
    "parameter_count",
    "perplexity",
    "recurrent_layer",
    "sample_negatives",
    "sequence_cross_entropy",
    "skipgram_pairs",
    "torch_parameter_name",
    "translation_loss",
    "windows",
]
