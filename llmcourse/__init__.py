"""llmcourse: the tested PyTorch package behind the course *Large Language Models from Scratch*.

The package is grouped by role, not by chapter: attention, training and generation
serve many chapters. Each subpackage re-exports its public names, so chapters import
briefly (``from llmcourse.modules import MultiHeadAttention``); inside the package,
modules import each other by their full module path.

The model code, from data to training (a subpackage imports only those above it, except
the shipped models' modules in :mod:`~llmcourse.models`, which evaluate and fine-tune
with :mod:`~llmcourse.training`)::

    checks        argument validators shared by every module (one wording for errors)
    data/         corpora (Python docs prose, the grammar), tasks, documents, batching
    text/         word and character tokens, pre-tokenization, byte-level BPE
    classic/      before the Transformer: n-grams and their interpolation, fixed-window LM,
                  word2vec, RNN, LSTM and GRU, seq2seq
    modules/      Transformer building blocks: attention (fused and written out, GQA), the
                  KV cache, positions, norms, feed-forward (GELU MLP, SwiGLU), the block
                  and stack, sparse, linear and tiled (online-softmax) attention, hybrid
                  memory
    models/       models built from modules: GPT (GPT-2 and Llama styles), BERT, T5, ViT,
                  fine-tuning heads, the shipped pretrained models (weights/), Chapter 9's
                  three bodies pretrained at equal compute
    generation/   sampling transforms, the one generation loop, beam search, speculative,
                  BLEU and chrF
    training/     the loop and its pieces: AdamW, clipping, parameter groups, schedules,
                  accumulation, evaluation, logs, checkpoints, DDP, pretraining objectives
                  and their batches, fine-tuning tasks and freezing

What the later chapters build on that code (each imports the core above and not each
other, except ``alignment``, which uses ``prompting``'s chat template and answer parsing
for its gold reward, and ``peft``, which uses ``compression``'s NF4 weights for QLoRA)::

    scaling/      parameter and FLOP counts, power-law and Chinchilla fits, the scaling
                  sweep's runs and shipped results (Chapter 10)
    prompting/    few-shot prompts, chains of thought, self-consistency, Auto-CoT, the
                  chat template and its loss mask, ensembles and cascades (Chapter 11)
    retrieval/    chunking, BM25 and dense retrieval, retrieval metrics (Chapter 11)
    alignment/    preferences and reward models, policy gradients, PPO, GRPO, DPO, the
                  gold reward, the shipped reward model and runs (Chapter 12)
    peft/         LoRA, adapters, prefix and prompt tuning, IA3, QLoRA (Chapter 13)
    compression/  quantization (absmax, zero-point, block-wise, NF4), outliers, pruning,
                  distillation, mixed precision (Chapter 13)

The course machinery, apart from the model code: :mod:`~llmcourse.grading` (the
sandboxed autograder and the students' self-check), :mod:`~llmcourse.exercises` (student
notebooks generated from the solutions), :mod:`~llmcourse.cli` (the ``llmcourse``
command), :mod:`~llmcourse.display` (tables and raw text in chapters) and
:mod:`~llmcourse.explorers` (the widgets a reader moves in a chapter: the pure, tested
computation behind each, the widget on it, and a static picture for the book; they may
import any subpackage).

Where a new module goes: into the subpackage of its role (a new attention variant into
``modules/``, a new model into ``models/``, a loss or a training step into
``training/``, a new way to adapt a trained model into ``peft/``), one idea per module;
a new subpackage only for a new role that several modules share. CONTRIBUTING.md says
the same.
"""

__version__ = "0.1.0"
