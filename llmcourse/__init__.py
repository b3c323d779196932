"""llmcourse: the tested PyTorch package behind the course *Large Language Models from Scratch*.

The package is grouped by role, not by chapter: attention, training and generation
serve many chapters. Each subpackage re-exports its public names, so chapters import
briefly (``from llmcourse.modules import MultiHeadAttention``); inside the package,
modules import each other by their full module path.

The model code, from data to training (a subpackage imports only those above it, and
:mod:`~llmcourse.training` only :mod:`~llmcourse.modules` for its parameter groups)::

    checks        argument validators shared by every module (one wording for errors)
    data/         corpora (Python docs prose, the grammar), tasks, documents, batching
    text/         word and character tokens, pre-tokenization, byte-level BPE
    classic/      before the Transformer: n-grams, fixed-window LM, word2vec, RNNs, seq2seq
    modules/      Transformer building blocks: attention (fused and written out, GQA), the
                  KV cache, positions, norms, feed-forward (GELU MLP, SwiGLU), the block
                  and stack, sparse and linear attention, hybrid memory
    models/       models built from modules: GPT (GPT-2 and Llama styles), BERT, T5, ViT,
                  fine-tuning heads, the shipped pretrained model (weights/)
    generation/   sampling transforms, the one generation loop, beam search, speculative
    training/     the loop and its pieces: AdamW, clipping, parameter groups, schedules,
                  accumulation, evaluation, logs, checkpoints, DDP, pretraining objectives

The course machinery, apart from the model code: :mod:`~llmcourse.grading` (the
sandboxed autograder and the students' self-check), :mod:`~llmcourse.exercises` (student
notebooks generated from the solutions), :mod:`~llmcourse.cli` (the ``llmcourse``
command) and :mod:`~llmcourse.display` (tables and raw text in chapters).

Where a new module goes: into the subpackage of its role (a new attention variant into
``modules/``, a new model into ``models/``, a loss or a training step into
``training/``), one idea per module; chapters 10 to 13 add ``scaling/`` (parameter and
FLOP counts, power-law fits), ``alignment/`` (reward models, policy gradients, PPO, DPO),
``peft/`` (LoRA, adapters, prefix and prompt tuning) and ``compression/``
(quantization, pruning, distillation) beside them. CONTRIBUTING.md says the same.
"""

__version__ = "0.1.0"
