"""llmcourse: the tested PyTorch package behind the course *Large Language Models from Scratch*.

Each module holds one idea and is imported by the chapter that teaches it:

- :mod:`llmcourse.data` -- offline corpora: Python's own documentation (real prose)
  and a seeded probabilistic grammar with exact log-probabilities.
- :mod:`llmcourse.tokenize` -- word and character tokenization and a vocabulary.
- :mod:`llmcourse.ngram` -- n-gram language models with add-k and Kneser-Ney smoothing.
- :mod:`llmcourse.neural_lm`, :mod:`llmcourse.word2vec` -- the fixed-window neural LM
  and skip-gram word vectors.
- :mod:`llmcourse.rnn`, :mod:`llmcourse.rnn_models` -- RNN and LSTM cells and layers
  written from scratch, and the language model, classifier and tagger built on them.
- :mod:`llmcourse.seq2seq` -- an encoder-decoder with dot and bilinear attention.
- :mod:`llmcourse.bpe`, :mod:`llmcourse.pretokenize` -- byte-level BPE and GPT-2's
  pre-tokenization pattern.
- :mod:`llmcourse.attention`, :mod:`llmcourse.positional`, :mod:`llmcourse.norms`,
  :mod:`llmcourse.transformer` -- attention, positions, norms, Transformer blocks and
  GPT-, BERT- and T5-style models.
- :mod:`llmcourse.sparse_attention`, :mod:`llmcourse.linear_attention`,
  :mod:`llmcourse.hybrid_memory`, :mod:`llmcourse.kv_cache`, :mod:`llmcourse.vit` --
  efficient attention, the memory of a KV cache, and images as patch sequences.
- :mod:`llmcourse.decoding`, :mod:`llmcourse.speculative` -- greedy, sampling
  (temperature, top-k, top-p), beam search and speculative decoding, with a KV cache.
- :mod:`llmcourse.objectives`, :mod:`llmcourse.heads` -- pretraining objectives (BERT's
  masking, next-sentence pairs, T5's span corruption) and fine-tuning heads.
- :mod:`llmcourse.pretrained` -- the course's small pretrained GPT and its tokenizer,
  shipped with the package (``recipes/pretrain_small.py`` retrains it).
- :mod:`llmcourse.training` -- the training loop every chapter that trains uses, with
  :mod:`llmcourse.schedule` (warmup and cosine decay), :mod:`llmcourse.checkpoint`
  (atomic saves, exact resume) and :mod:`llmcourse.distributed` (DDP under torchrun).
- :mod:`llmcourse.exercises` -- generates student exercises from the solution notebooks.
- :mod:`llmcourse.grading` -- the sandboxed autograder and the students' self-check.
"""

__version__ = "0.1.0"
