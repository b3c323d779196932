"""Parameter-efficient fine-tuning: adapt a frozen pretrained model by training a few
parameters (Chapter 13).

- :mod:`.lora` -- LoRA, a trained low-rank update of chosen linear layers, merged into
  the weights after training; selecting layers by name.
- :mod:`.adapters` -- bottleneck adapters after the attention and feed-forward sublayers.
- :mod:`.prefix` -- prefix tuning: trained keys and values read through the KV cache.
- :mod:`.prompt` -- prompt tuning: a trained soft prompt before the input's embeddings.
- :mod:`.ia3` -- IA³: trained vectors that rescale keys, values and FFN activations.
- :mod:`.qlora` -- LoRA on a frozen base stored in NF4 (from :mod:`llmcourse.compression`).
- :mod:`.trainable` -- freezing, counting, BitFit (biases only), saving and loading only
  the trained parameters, a checksum of the weights, the memory of a training step.
"""

from llmcourse.peft.adapters import (
    ADAPTER_ACTIVATIONS,
    SUBLAYERS,
    AdaptedSublayer,
    BottleneckAdapter,
    adapter_parameter_count,
    add_adapters,
)
from llmcourse.peft.ia3 import ScaleInput, ScaleOutput, apply_ia3
from llmcourse.peft.lora import (
    LoRALinear,
    apply_lora,
    linear_layer_names,
    lora_layers,
    matches,
    merge_lora,
    select_linear_layers,
    unmerge_lora,
)
from llmcourse.peft.prefix import PrefixTuning
from llmcourse.peft.prompt import PromptTuning
from llmcourse.peft.qlora import QLORA_TARGETS, apply_qlora
from llmcourse.peft.trainable import (
    bitfit,
    count_parameters,
    freeze,
    load_trainable,
    save_trainable,
    state_checksum,
    trainable_state,
    training_memory,
)

__all__ = [
    "ADAPTER_ACTIVATIONS",
    "AdaptedSublayer",
    "adapter_parameter_count",
    "add_adapters",
    "apply_ia3",
    "apply_lora",
    "apply_qlora",
    "bitfit",
    "BottleneckAdapter",
    "count_parameters",
    "freeze",
    "linear_layer_names",
    "load_trainable",
    "lora_layers",
    "LoRALinear",
    "matches",
    "merge_lora",
    "PrefixTuning",
    "PromptTuning",
    "QLORA_TARGETS",
    "save_trainable",
    "ScaleInput",
    "ScaleOutput",
    "select_linear_layers",
    "state_checksum",
    "SUBLAYERS",
    "trainable_state",
    "training_memory",
    "unmerge_lora",
]
