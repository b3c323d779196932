"""Quantized weights in a model: linear layers that store codes and dequantize on the fly
(W4A16), and the weights of a whole model quantized to measure what it costs.

A weight-only quantized layer keeps its weight as codes and constants and, at every
forward pass, dequantizes it to a 16- or 32-bit float and multiplies as usual::

    W_hat = dequantize(codes, constants)   (in compute_dtype)
    y = x W_hat^T + b

The weights take 4 (or 8, 3 ...) bits each in memory, the activations and the product
stay in 16 bits: "W4A16". Memory shrinks and, on hardware where reading the weights is
the bottleneck (generating one token at a time), so does time; the arithmetic is the
same as before. :class:`QuantizedLinear` does this with any scheme of
:mod:`~llmcourse.compression.quantize` or :mod:`~llmcourse.compression.codebook`, its codes
packed two per byte at 4 bits. QLoRA (:mod:`llmcourse.peft.qlora`) trains LoRA on top of
such frozen NF4 layers.

To measure the quality of a quantized model, :func:`fake_quantize_weights` replaces the
weights of a float model by their dequantized values in place: the model then computes
in float32 exactly what a dequantize-then-multiply layer computes, and
:func:`quantized_nbytes` adds up the storage the quantized weights would take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmcourse.checks import check_choice
from llmcourse.compression.codebook import codebook_quantize, double_quantize, normal_float_values
from llmcourse.compression.quantize import (
    Quantized,
    dequantize,
    pack_codes,
    quantize,
    unpack_codes,
)

WEIGHT_SCHEMES = ("absmax", "zeropoint", "normalfloat")
COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def quantize_weight(
    weight: Tensor,
    scheme: str = "normalfloat",
    bits: int = 4,
    block_size: int | None = 64,
    double_quant: bool = False,
) -> Quantized:
    """Quantize a ``(out_features, in_features)`` weight: in blocks of ``block_size``, or
    per output channel (one row, ``axis=0``) when ``block_size`` is None.

    Args:
        weight: the matrix (or any tensor; per channel means along its first axis).
        scheme: ``"absmax"``, ``"zeropoint"`` or ``"normalfloat"`` (NF4 at 4 bits).
        bits: code width (:data:`~llmcourse.compression.quantize.BITS`).
        block_size: numbers per block; None for per-channel constants.
        double_quant: quantize the constants too (absmax and normalfloat, blocks only).
    """
    check_choice("scheme", scheme, WEIGHT_SCHEMES)
    groups = {"axis": 0} if block_size is None else {"block_size": block_size}
    if scheme == "normalfloat":
        q = codebook_quantize(weight, normal_float_values(bits), **groups)
    else:
        q = quantize(weight, scheme, bits, **groups)
    if double_quant:
        if scheme == "zeropoint" or block_size is None:
            raise ValueError(
                "double quantization applies to the block constants of absmax "
                "and normalfloat schemes"
            )
        q = double_quantize(q)
    return q


class QuantizedLinear(nn.Module):
    """A frozen linear layer whose weight is stored quantized and dequantized at every call.

    Args:
        q: the quantized ``(out_features, in_features)`` weight.
        bias: ``(out_features,)`` or None; kept in float32.
        compute_dtype: the dtype of the dequantized weight and of the product (bfloat16
            for W4A16); the output is cast back to the input's dtype.

    Buffers (no parameters): the codes, packed ``8 / bits`` per byte when ``bits``
    divides 8 (one per byte otherwise), the constants and, for the other schemes, zero
    points or the codebook. ``nbytes`` is the storage of the weight as
    :attr:`Quantized.nbytes` counts it.
    """

    def __init__(
        self, q: Quantized, bias: Tensor | None = None, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        if len(q.layout.shape) != 2:
            raise ValueError(f"a linear weight is 2-D, got the shape {q.layout.shape}")
        check_choice("compute_dtype", compute_dtype, COMPUTE_DTYPES)
        self.out_features, self.in_features = q.layout.shape
        self.compute_dtype = compute_dtype
        self.nbytes = q.nbytes
        self._spec = self._store("weight", q)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        scheme: str = "normalfloat",
        bits: int = 4,
        block_size: int | None = 64,
        double_quant: bool = False,
        compute_dtype: torch.dtype = torch.float32,
    ) -> QuantizedLinear:
        """Quantize ``linear``'s weight with :func:`quantize_weight` (same arguments)."""
        q = quantize_weight(linear.weight.detach(), scheme, bits, block_size, double_quant)
        return cls(q, linear.bias, compute_dtype)

    def _store(self, prefix: str, q: Quantized) -> dict:
        """Register the tensors of ``q`` as buffers named ``prefix_*``; return what is needed
        to rebuild it (the names, bits, layout and the codes' unsigned shift)."""
        shift = 2 ** (q.bits - 1) - 1 if q.codes.dtype == torch.int8 else 0
        unsigned = (q.codes.to(torch.int16) + shift).to(torch.uint8)
        packed = 8 % q.bits == 0 and unsigned.numel() % (8 // q.bits) == 0
        self.register_buffer(
            f"{prefix}_codes", pack_codes(unsigned, q.bits) if packed else unsigned
        )
        spec = {
            "bits": q.bits,
            "layout": q.layout,
            "shift": shift,
            "packed": packed,
            "codes_shape": tuple(q.codes.shape),
            "signed": q.codes.dtype == torch.int8,
        }
        if isinstance(q.scale, Quantized):
            spec["scale"] = self._store(f"{prefix}_scale", q.scale)
        else:
            self.register_buffer(f"{prefix}_scale", q.scale.clone())
        for name in ("zero_point", "values", "offset"):
            value = getattr(q, name)
            self.register_buffer(f"{prefix}_{name}", None if value is None else value.clone())
        spec["prefix"] = prefix
        return spec

    def _load(self, spec: dict) -> Quantized:
        prefix, bits = spec["prefix"], spec["bits"]
        codes = getattr(self, f"{prefix}_codes")
        if spec["packed"]:
            codes = unpack_codes(codes, bits)
        codes = codes.reshape(spec["codes_shape"])
        if spec["signed"]:
            codes = (codes.to(torch.int16) - spec["shift"]).to(torch.int8)
        scale = self._load(spec["scale"]) if "scale" in spec else getattr(self, f"{prefix}_scale")
        return Quantized(
            codes,
            scale,
            bits,
            spec["layout"],
            getattr(self, f"{prefix}_zero_point"),
            getattr(self, f"{prefix}_values"),
            getattr(self, f"{prefix}_offset"),
        )

    def quantized(self) -> Quantized:
        """The stored weight as a :class:`~llmcourse.compression.quantize.Quantized`."""
        return self._load(self._spec)

    def dequantized_weight(self) -> Tensor:
        """``(out_features, in_features)`` in ``compute_dtype``."""
        return dequantize(self.quantized()).to(self.compute_dtype)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (..., in_features)`` -> ``(..., out_features)``, computed in
        ``compute_dtype``, returned in ``x``'s dtype."""
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        out = F.linear(x.to(self.compute_dtype), self.dequantized_weight(), bias)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self._spec['bits']}, compute_dtype={self.compute_dtype}"
        )


def quantize_linear_layers(
    model: nn.Module,
    names: Sequence[str],
    scheme: str = "normalfloat",
    bits: int = 4,
    block_size: int | None = 64,
    double_quant: bool = False,
    compute_dtype: torch.dtype = torch.float32,
) -> dict[str, QuantizedLinear]:
    """Replace the ``nn.Linear`` layers of ``model`` called ``names`` (full names, from
    :func:`llmcourse.peft.lora.select_linear_layers` for instance) by
    :class:`QuantizedLinear` copies, in place. Returns them by name."""
    layers = {}
    for name in names:
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{name!r} is a {type(linear).__name__}, not an nn.Linear")
        layer = QuantizedLinear.from_linear(
            linear, scheme, bits, block_size, double_quant, compute_dtype
        )
        model.set_submodule(name, layer)
        layers[name] = layer
    return layers


def matrix_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The 2-D parameters of ``model`` by name, each shared tensor once: the weights of
    linear layers and embedding tables, which hold nearly all the numbers. Biases and
    norm gains (1-D) are usually kept in 16 or 32 bits."""
    return {name: p for name, p in model.named_parameters() if p.ndim == 2}


@torch.no_grad()
def fake_quantize_weights(
    model: nn.Module,
    quantizer: Callable[[Tensor], Quantized],
    names: Sequence[str] | None = None,
) -> dict[str, Quantized]:
    """Replace the weights called ``names`` (default: :func:`matrix_parameters`) by their
    dequantized values, in place; return the :class:`Quantized` of each.

    ``quantizer(weight) -> Quantized``, e.g.
    ``lambda w: quantize_weight(w, "absmax", 4, block_size=64)``.
    """
    params = dict(model.named_parameters())
    names = list(matrix_parameters(model)) if names is None else list(names)
    quantized = {}
    for name in names:
        if name not in params:
            raise ValueError(f"the model has no parameter {name!r}")
        q = quantizer(params[name].detach())
        params[name].copy_(dequantize(q).to(params[name].dtype))
        quantized[name] = q
    return quantized


def quantized_nbytes(model: nn.Module, quantized: dict[str, Quantized]) -> int:
    """The storage of ``model`` with the weights of ``quantized`` stored quantized and its
    other parameters and buffers as they are (each shared tensor once)."""
    total = sum(q.nbytes for q in quantized.values())
    params = dict(model.named_parameters())
    quantized_ids = {id(params[name]) for name in quantized}
    seen = set()
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in quantized_ids and id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total
