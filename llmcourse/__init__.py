"""llmcourse: the tested PyTorch package behind the course *Large Language Models from Scratch*.

Each module holds one idea and is imported by the chapter that teaches it:

- :mod:`llmcourse.data` -- offline corpora: Python's own documentation (real prose)
  and a seeded probabilistic grammar with exact log-probabilities.
- :mod:`llmcourse.tokenize` -- word and character tokenization and a vocabulary.
- :mod:`llmcourse.ngram` -- n-gram language models with add-k and Kneser-Ney smoothing.
- :mod:`llmcourse.exercises` -- generates student exercises from the solution notebooks.
"""

__version__ = "0.1.0"
