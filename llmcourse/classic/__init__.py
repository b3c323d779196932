"""Language models before the Transformer, built from scratch.

- :mod:`.ngram` -- n-gram models with add-k and Kneser-Ney smoothing (Chapter 1).
- :mod:`.interpolation` -- Jelinek-Mercer interpolation of the orders, its weights fit by
  EM on held-out text (Chapter 1).
- :mod:`.neural_lm`, :mod:`.word2vec` -- the fixed-window neural LM and skip-gram word
  vectors, with negative sampling and the subsampling of frequent words (Chapter 2).
- :mod:`.rnn`, :mod:`.rnn_models` -- RNN, LSTM and GRU cells and layers, and the
  language model, classifier and tagger built on them (Chapter 3).
- :mod:`.seq2seq` -- a GRU encoder-decoder with dot, bilinear and additive attention
  (Chapter 4).
"""

from llmcourse.classic.interpolation import (
    fit_interpolation_weights,
    interpolated_cross_entropy,
    interpolated_prob,
    order_probabilities,
)
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
    GRU,
    LSTM,
    NONLINEARITIES,
    RNN,
    GRUCell,
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
    AdditiveAttention,
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
    SUBSAMPLING_FORMS,
    SkipGram,
    cosine_similarity_matrix,
    keep_probabilities,
    nearest,
    noise_distribution,
    sample_negatives,
    skipgram_pairs,
    subsample,
)

__all__ = [
    "ATTENTIONS",
    "AdditiveAttention",
    "BilinearAttention",
    "CELLS",
    "Decoder",
    "DotAttention",
    "Encoder",
    "FixedWindowLM",
    "GRU",
    "GRUCell",
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
    "SUBSAMPLING_FORMS",
    "SkipGram",
    "cosine_similarity_matrix",
    "cross_entropy",
    "decode_accuracy",
    "final_states",
    "fit_interpolation_weights",
    "from_torch",
    "interpolated_cross_entropy",
    "interpolated_prob",
    "load_torch_weights",
    "keep_probabilities",
    "masked_softmax",
    "mean_pool",
    "nearest",
    "ngrams",
    "noise_distribution",
    "order_probabilities",
    "pad",
    "parameter_count",
    "perplexity",
    "recurrent_layer",
    "sample_negatives",
    "sequence_cross_entropy",
    "skipgram_pairs",
    "subsample",
    "torch_parameter_name",
    "translation_loss",
    "windows",
]
