"""Scaling laws: counting parameters and FLOPs, sweeps of runs, and the fits of Chapter 10.

- :mod:`.counting` -- non-embedding parameters, training FLOPs in closed form and as
  counted by PyTorch.
- :mod:`.sweep` -- one run of a sweep (a model of one size on one number of tokens);
  :mod:`.results` -- the shipped results of ``recipes/scaling_sweep.py``.
- :mod:`.fits` -- power laws fitted in log space, bootstrap uncertainty.
- :mod:`.chinchilla` -- compute-optimal allocation: the envelope of training curves,
  IsoFLOP parabolas and the parametric loss ``E + A/N^alpha + B/D^beta``.
"""

from llmcourse.scaling.chinchilla import (
    HOFFMANN_GRID,
    Frontier,
    IsoFLOPMinimum,
    ParametricLoss,
    fit_parametric,
    frontier,
    isoflop_minimum,
    optimal_allocation,
)
from llmcourse.scaling.counting import (
    EMBEDDING_PARTS,
    counted_training_flops,
    non_embedding_parameters,
    training_flops_per_token,
)
from llmcourse.scaling.fits import (
    Bootstrap,
    PowerLaw,
    bootstrap,
    check_positive_series,
    fit_power_law,
)
from llmcourse.scaling.results import (
    RESULTS_FILE,
    load_sweep,
    runs_of,
)
from llmcourse.scaling.sweep import (
    ARCHITECTURES,
    BATCH_SIZE,
    CONTEXT,
    CORPORA,
    GRAMMAR_EVAL_SEED,
    GRAMMAR_EVAL_SENTENCES,
    LSTM_SIZES,
    SIZES,
    TOKENS_PER_STEP,
    RunSpec,
    build_model,
    curve,
    evaluate_run,
    gpt_config,
    grammar_eval,
    grammar_of,
    learning_rate,
    lstm_loss,
    prose,
    train_run,
    training_batches,
)

__all__ = [
    "ARCHITECTURES",
    "BATCH_SIZE",
    "Bootstrap",
    "CONTEXT",
    "CORPORA",
    "EMBEDDING_PARTS",
    "Frontier",
    "GRAMMAR_EVAL_SEED",
    "GRAMMAR_EVAL_SENTENCES",
    "HOFFMANN_GRID",
    "IsoFLOPMinimum",
    "LSTM_SIZES",
    "ParametricLoss",
    "PowerLaw",
    "RESULTS_FILE",
    "RunSpec",
    "SIZES",
    "TOKENS_PER_STEP",
    "bootstrap",
    "build_model",
    "check_positive_series",
    "counted_training_flops",
    "curve",
    "evaluate_run",
    "fit_parametric",
    "fit_power_law",
    "frontier",
    "gpt_config",
    "grammar_eval",
    "grammar_of",
    "isoflop_minimum",
    "learning_rate",
    "load_sweep",
    "lstm_loss",
    "non_embedding_parameters",
    "optimal_allocation",
    "prose",
    "runs_of",
    "train_run",
    "training_batches",
    "training_flops_per_token",
]
