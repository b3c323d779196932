"""Data: offline corpora and tasks, documents, and batches.

- :mod:`.prose` -- real English prose from the Python documentation that ships with the
  interpreter (:func:`python_docs`), split into train and validation text.
- :mod:`.grammar` -- a seeded probabilistic grammar (:func:`english_grammar`) that
  generates sentences with their exact log-probability and entropy.
- :mod:`.lexicon` -- a grammar with a Zipfian lexicon of invented words
  (:func:`lexical_grammar`): harder text with an exact entropy, for the scaling sweep.
- :mod:`.lm_corpora` -- the language-modelling streams of the scaling sweep: endless
  grammar sentences with an exact floor, the documentation's characters.
- :mod:`.documents` -- the ``<|endoftext|>`` document format of the pretrained models,
  their reserved special tokens and fixed evaluation documents.
- :mod:`.batching` -- random windows of a token stream, padded batches.
- Tasks, imported from their modules: :mod:`.labelled` (agreement, number tagging),
  :mod:`.translation` ("Grammish"), :mod:`.phrases` (BIO chunks, span questions),
  :mod:`.stripes` (images for the vision transformer).
"""

from llmcourse.data.batching import (
    IGNORE_INDEX,
    pad_batch,
    random_blocks,
)
from llmcourse.data.documents import (
    EOT,
    EVAL_GRAMMAR_SEED,
    EVAL_GRAMMAR_SENTENCES,
    SPECIAL_TOKENS,
    document_stream,
    evaluation_documents,
    grammar_text,
)
from llmcourse.data.grammar import (
    END,
    Grammar,
    Sample,
    english_grammar,
)
from llmcourse.data.lexicon import (
    invented_words,
    lexical_grammar,
    zipf_weights,
)
from llmcourse.data.lm_corpora import (
    SEPARATOR,
    CharacterCorpus,
    GrammarEvalSet,
    grammar_batches,
    grammar_eval_set,
    grammar_vocabulary,
    prose_characters,
    sentence_loss,
)
from llmcourse.data.prose import (
    Split,
    prose_paragraphs,
    python_docs,
)

__all__ = [
    "invented_words",
    "lexical_grammar",
    "zipf_weights",
    "CharacterCorpus",
    "END",
    "EOT",
    "EVAL_GRAMMAR_SEED",
    "EVAL_GRAMMAR_SENTENCES",
    "Grammar",
    "GrammarEvalSet",
    "IGNORE_INDEX",
    "SEPARATOR",
    "SPECIAL_TOKENS",
    "Sample",
    "Split",
    "document_stream",
    "english_grammar",
    "evaluation_documents",
    "grammar_batches",
    "grammar_eval_set",
    "grammar_text",
    "grammar_vocabulary",
    "pad_batch",
    "prose_characters",
    "prose_paragraphs",
    "python_docs",
    "random_blocks",
    "sentence_loss",
]
