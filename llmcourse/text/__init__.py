"""Text to tokens: word and character tokenization, pre-tokenization and byte-level BPE.

- :mod:`.words` -- lower-cased words, sentences, characters and a :class:`Vocab`
  (Chapters 1 to 4).
- :mod:`.pretokenize` -- GPT-2's (and GPT-4's) pattern that cuts text into the pieces BPE
  merges within.
- :mod:`.bpe` -- byte-level byte-pair encoding: training, encoding, decoding, saving.
"""

from llmcourse.text.bpe import (
    BPETokenizer,
)
from llmcourse.text.bpe_training import (
    PairCounts,
    count_words,
    learn_merges,
)
from llmcourse.text.bytelevel import (
    BYTE_ID,
    from_byte_level,
    to_byte_level,
    utf8,
)
from llmcourse.text.pretokenize import (
    GPT2_PATTERN,
    GPT4_PATTERN,
    check_specials,
    pretokenize,
    split_specials,
    stream_cut,
)
from llmcourse.text.words import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocab,
    char_tokenize,
    split_sentences,
    tokenized_sentences,
    word_tokenize,
)

__all__ = [
    "BOS",
    "BPETokenizer",
    "BYTE_ID",
    "EOS",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "PAD",
    "PairCounts",
    "UNK",
    "Vocab",
    "char_tokenize",
    "check_specials",
    "count_words",
    "from_byte_level",
    "learn_merges",
    "pretokenize",
    "split_sentences",
    "split_specials",
    "stream_cut",
    "to_byte_level",
    "tokenized_sentences",
    "utf8",
    "word_tokenize",
]
