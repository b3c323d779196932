"""Knowledge distillation: a small student trained to match a large teacher's
distributions (Hinton et al., 2015).

Trained on data alone, a model learns from one target per position: the token that came
next. A teacher's distribution over the whole vocabulary says much more: which other
tokens were plausible, and how plausible. Distillation trains the student on it. Both
distributions are softened by a temperature ``T`` (dividing the logits by ``T`` before the
softmax), which raises the small probabilities that carry this "dark knowledge"::

    p_T = softmax(z_teacher / T),   p_S = softmax(z_student / T),
    L_KD = T^2 KL(p_T || p_S) = T^2 sum_i p_T,i (log p_T,i - log p_S,i).

The gradient of the KL term with respect to the student's logits is ``(p_S - p_T) / T``,
which shrinks as ``1 / T^2`` for large ``T`` (Hinton et al.); multiplying by ``T^2``
keeps its size comparable across temperatures and with the ordinary loss it is mixed
with. The KL divergence differs from the cross-entropy ``-sum_i p_T,i log p_S,i`` only by
the teacher's entropy, which does not depend on the student: both have the same
gradient.

:func:`kd_loss` mixes the two signals, ``alpha L_KD + (1 - alpha) CE(targets)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from llmcourse.checks import (
    check_float_tensor,
    check_non_negative,
    check_positive,
    check_same_shape,
)
from llmcourse.data.batching import IGNORE_INDEX


def _kl_per_position(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))`` at every position, ``(...)``,
    in float32 (float64 for float64 logits)."""
    dtype = torch.promote_types(student_logits.dtype, torch.float32)  # 16 bits -> float32
    log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)


def _check_logits(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> None:
    check_float_tensor("student_logits", student_logits)
    check_float_tensor("teacher_logits", teacher_logits)
    check_same_shape(student_logits=student_logits, teacher_logits=teacher_logits)
    check_positive("temperature", temperature)


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    """``T^2 KL(softmax(teacher / T) || softmax(student / T))``, averaged over every
    position.

    Args:
        student_logits: ``(..., vocab)``.
        teacher_logits: ``(..., vocab)``, the same shape; no gradient flows into it.
        temperature: ``T > 0``.

    Returns:
        A 0-d tensor: the sum over the vocabulary, the mean over the leading dimensions.
    """
    _check_logits(student_logits, teacher_logits, temperature)
    return temperature**2 * _kl_per_position(student_logits, teacher_logits, temperature).mean()


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """``alpha * distillation_loss + (1 - alpha) * cross_entropy(student, targets)``, both
    averaged over the positions whose target is not ``ignore_index``.

    Args:
        student_logits, teacher_logits: ``(..., vocab)``.
        targets: ``(...)`` long, the data's next tokens.
        temperature: ``T > 0`` of the distillation term.
        alpha: the weight of the distillation term, in ``[0, 1]``.
    """
    _check_logits(student_logits, teacher_logits, temperature)
    check_non_negative("alpha", alpha)
    if alpha > 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if targets.shape != student_logits.shape[:-1]:
        raise ValueError(
            f"targets must have the shape {tuple(student_logits.shape[:-1])} of the logits "
            f"without the vocabulary, got {tuple(targets.shape)}"
        )
    hard = F.cross_entropy(
        student_logits.flatten(0, -2).float(), targets.flatten(), ignore_index=ignore_index
    )
    keep = (targets != ignore_index).float()
    kl = _kl_per_position(student_logits, teacher_logits, temperature)
    soft = temperature**2 * (kl * keep).sum() / keep.sum()
    return alpha * soft + (1 - alpha) * hard
