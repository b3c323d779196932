"""Explorer of Chapter 8: temperature, top-k, top-p and min-p on a real next-token
distribution.

:func:`sampling_view` is the computation: from next-token logits and the four settings,
the distribution that sampling draws from (exactly :func:`llmcourse.generation.process_logits`
followed by the softmax, what :func:`llmcourse.generation.sample` uses), which tokens are
kept, the probability mass they held and the entropy left. :func:`explore_sampling`
wraps it in a widget: the reader types a prompt, the model reads it once, and the
sliders redraw the bar chart of the most probable tokens before and after the filters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor, nn

from llmcourse.explorers.widget import Blitter, Explorer, Rendering
from llmcourse.generation.generate import eval_no_grad, model_logits
from llmcourse.generation.sampling import apply_temperature, process_logits


@dataclass(frozen=True)
class SamplingView:
    """One next-token distribution before and after temperature and the filters.

    Attributes:
        probs: ``(vocab,)`` the model's distribution, ``softmax(logits)``.
        tempered: ``(vocab,)`` after temperature only, ``softmax(logits / temperature)``.
        filtered: ``(vocab,)`` the distribution sampling draws from: the tempered one
            restricted to the kept tokens and renormalised.
        kept: ``(vocab,)`` bool, the tokens that survive top-k, top-p and min-p.
        n_kept: the number of kept tokens.
        kept_mass: the mass of the kept tokens under ``tempered``, in ``(0, 1]``.
        entropy: the entropy of ``filtered`` in nats.
    """

    probs: Tensor
    tempered: Tensor
    filtered: Tensor
    kept: Tensor
    n_kept: int
    kept_mass: float
    entropy: float


def entropy_nats(probs: Tensor) -> float:
    """``-sum p log p`` over the non-zero entries of a ``(vocab,)`` distribution."""
    nonzero = probs[probs > 0]
    return float(-(nonzero * nonzero.log()).sum())


def sampling_view(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> SamplingView:
    """What temperature, top-k, top-p and min-p do to one next-token distribution.

    Args:
        logits: ``(vocab,)`` next-token logits.
        temperature, top_k, top_p, min_p: as in :func:`llmcourse.generation.process_logits`
            (None: that filter is off).

    Returns:
        A :class:`SamplingView` in float64; ``filtered`` equals
        ``process_logits(logits, temperature, top_k, top_p, min_p=min_p).softmax(-1)``.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 1:
        raise ValueError(f"logits must be a (vocab,) tensor, got {logits!r:.80}")
    logits = logits.double()
    tempered = apply_temperature(logits, temperature).softmax(-1)
    processed = process_logits(logits, temperature, top_k, top_p, min_p=min_p)
    kept = processed > -math.inf
    filtered = processed.softmax(-1)
    return SamplingView(
        probs=logits.softmax(-1),
        tempered=tempered,
        filtered=filtered,
        kept=kept,
        n_kept=int(kept.sum()),
        kept_mass=float(tempered[kept].sum()),
        entropy=entropy_nats(filtered),
    )


def next_token_logits(model: nn.Module, ids: Sequence[int]) -> Tensor:
    """The ``(vocab,)`` logits of the token after ``ids`` (a non-empty list of token ids),
    in eval mode without gradients."""
    if not ids:
        raise ValueError("ids must hold at least one token id")
    with eval_no_grad(model):
        return model_logits(model, torch.tensor([list(ids)]))[0, -1]


def token_label(text: str) -> str:
    """A token's text as a tick label: quoted, spaces shown as ``␣``, newlines as ``⏎``."""
    return repr(text.replace(" ", "␣"))[1:-1].replace("\\n", "⏎")


PROBABILITY_RANGE = (1e-4, 1.5)
"""The fixed range of the chart's probability axis (log scale)."""


class SamplingChart:
    """A bar chart of the ``n`` most probable next tokens, on a fixed log scale.

    Grey bars are the model's probabilities at temperature 1 (red where the token is
    removed), blue bars the distribution sampled from; a removed token has no blue bar.
    The axes are drawn once per prompt (their tick labels name its tokens): a new setting
    redraws only the bars and the title (:class:`~llmcourse.explorers.widget.Blitter`).
    """

    def __init__(self, n: int = 16) -> None:
        self.n = n
        figure = Figure(figsize=(9, 3.3), dpi=80)
        figure.subplots_adjust(left=0.08, right=0.83, top=0.84, bottom=0.24)
        self.ax = figure.add_subplot()
        x = torch.arange(n).numpy()
        self.ax.set_yscale("log")
        self.ax.set_ylim(*PROBABILITY_RANGE)
        self.ax.set_xlim(-0.6, n - 0.4)
        self.model_bars = self.ax.bar(x - 0.2, [1.0] * n, 0.4, color="0.7")
        self.sampled_bars = self.ax.bar(x + 0.2, [1.0] * n, 0.4, color="C0")
        self.ax.set_xticks(x, [""] * n, rotation=60, fontsize=8)
        self.labels: list[str] = [""] * n
        self.ax.set_ylabel("probability")
        self.ax.legend(
            [Patch(color="0.7"), Patch(color="C3", alpha=0.5), Patch(color="C0")],
            ["model, kept", "model, removed", "sampled from"],
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
        self.title = self.ax.set_title("", fontsize=9)
        bars = [*self.model_bars, *self.sampled_bars]
        self.blitter = Blitter(figure, [*bars, self.title])

    @property
    def figure(self) -> Figure:
        return self.blitter.figure

    def update(self, view: SamplingView, labels: Sequence[str], title: str = "") -> None:
        """Show ``view``'s ``n`` most probable tokens; ``labels[i]`` names the ``i``-th
        most probable one (new labels redraw the axes)."""
        if len(labels) != self.n:
            raise ValueError(f"labels must name the {self.n} tokens shown, got {len(labels)}")
        if list(labels) != self.labels:  # a new prompt: new tick labels, a new background
            self.ax.set_xticks(self.ax.get_xticks(), labels, rotation=60, fontsize=8)
            self.labels = list(labels)
            self.blitter.redraw_background()
        order = view.probs.topk(self.n).indices
        model, sampled, kept = view.probs[order], view.filtered[order], view.kept[order]
        rows = zip(self.model_bars, model.tolist(), kept.tolist(), strict=True)
        for bar, height, is_kept in rows:
            bar.set_height(height)
            bar.set_color("0.7" if is_kept else (0.84, 0.15, 0.16, 0.5))
        for bar, height in zip(self.sampled_bars, sampled.tolist(), strict=True):
            bar.set_height(height)
        summary = (
            f"kept {view.n_kept} tokens, holding {view.kept_mass:.0%} of the tempered mass; "
            f"entropy {view.entropy:.2f} nats"
        )
        self.title.set_text(f"{title}\n{summary}" if title else summary)

    def rendering(
        self, view: SamplingView, labels: Sequence[str], title: str, text: str
    ) -> Rendering:
        """:meth:`update`, then the chart as a PNG :class:`Rendering` with ``text``."""
        self.update(view, labels, title)
        return self.blitter.rendering(text)


def explore_sampling(
    model: nn.Module,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    prompt: str = "The function returns",
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    n_shown: int = 16,
) -> Explorer:
    """A widget: type a prompt, move temperature, top-k, top-p and min-p, and watch the
    most probable next tokens before and after.

    Args:
        model: ``model(idx (1, time)) -> logits (1, time, vocab)``.
        encode: the prompt's text to the ids the model reads (with any start token).
        decode: a list of ids to text (used for one token at a time).
        prompt: the initial prompt.
        temperature, top_k, top_p, min_p: the sliders' initial values (``top_k = 0``,
            ``top_p = 1`` and ``min_p = 0`` switch a filter off).
        n_shown: how many of the most probable tokens the chart shows.

    The controls are ``prompt`` (a text box, read on Enter), then the sliders
    ``temperature``, ``top_k`` (0: off), ``top_p`` (1: off) and ``min_p`` (0: off). The
    model runs once per prompt; a slider only refilters its logits.
    """
    cache: dict[str, Tensor] = {}
    chart = SamplingChart(n_shown)

    def logits_of(text: str) -> Tensor:
        if text not in cache:
            cache.clear()
            cache[text] = next_token_logits(model, encode(text))
        return cache[text]

    def render(prompt, temperature, top_k, top_p, min_p) -> Rendering:
        logits = logits_of(prompt)
        view = sampling_view(
            logits,
            temperature,
            top_k or None,
            top_p if top_p < 1 else None,
            min_p or None,
        )
        labels = [token_label(decode([i])) for i in view.probs.topk(n_shown).indices.tolist()]
        settings = ", ".join(
            [f"τ = {temperature:.2f}"]
            + [f"top-k = {top_k}"] * bool(top_k)
            + [f"top-p = {top_p:.2f}"] * (top_p < 1)
            + [f"min-p = {min_p:.2f}"] * bool(min_p)
        )
        text = f"{view.n_kept} tokens kept after {prompt!r}"
        return chart.rendering(view, labels, f"after {prompt!r}, {settings}", text)

    style = {"description_width": "initial"}
    controls = {
        "prompt": ipywidgets.Text(
            value=prompt, description="prompt", continuous_update=False, style=style
        ),
        "temperature": ipywidgets.FloatSlider(
            value=temperature, min=0.1, max=3.0, step=0.05, description="temperature τ", style=style
        ),
        "top_k": ipywidgets.IntSlider(
            value=top_k, min=0, max=100, description="top-k (0: off)", style=style
        ),
        "top_p": ipywidgets.FloatSlider(
            value=top_p, min=0.05, max=1.0, step=0.01, description="top-p (1: off)", style=style
        ),
        "min_p": ipywidgets.FloatSlider(
            value=min_p, min=0.0, max=0.5, step=0.01, description="min-p (0: off)", style=style
        ),
    }
    return Explorer(controls, render, "explorer: temperature, top-k, top-p and min-p", per_row=1)
