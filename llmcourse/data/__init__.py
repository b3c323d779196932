"""Offline, deterministic corpora for the course.

- :func:`python_docs` -- real English prose from the Python documentation that ships
  with the interpreter, split into train and validation text.
- :class:`Grammar` and :func:`english_grammar` -- a seeded probabilistic grammar that
  generates sentences together with their exact log-probability.
- :mod:`llmcourse.data.labelled` -- agreement and number-tagging tasks from the grammar.
- :mod:`llmcourse.data.translation` -- "Grammish", a synthetic translation task.
- :mod:`llmcourse.data.phrases` -- noun-phrase chunks (BIO) and span questions.
- :mod:`llmcourse.data.stripes` -- small striped images, for the vision transformer.
"""

from llmcourse.data.grammar import Grammar, Sample, english_grammar
from llmcourse.data.prose import Split, python_docs

__all__ = ["Grammar", "Sample", "Split", "english_grammar", "python_docs"]
