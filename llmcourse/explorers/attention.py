"""Explorer of Chapters 6 and 7: the attention weights of a trained model, per layer and
head, for a sentence the reader types.

:func:`attention_weights` runs a model once on a sequence of token ids inside
:func:`~llmcourse.modules.attention.record_attention` (every attention layer computes its
weights with the written-out formula and keeps them) and stacks them, ``(n_layers,
n_heads, T, T)``. :func:`attention_view` does it for a text, with a label per token, and
:meth:`AttentionView.maps` picks what one setting shows: one head of a layer, or all its
heads, and for each the key that the last token attends to most. :func:`explore_attention`
wraps it in a widget: a text box, a layer and a head (or all heads), and a heat map whose
rows are queries and whose columns are keys, both labelled with the tokens.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ipywidgets
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.text import Text
from torch import Tensor, nn

from llmcourse.checks import is_int
from llmcourse.data.documents import EOT
from llmcourse.explorers.sampling import token_label
from llmcourse.explorers.widget import Blitter, Explorer, Rendering, html_rendering
from llmcourse.generation.generate import context_size, eval_no_grad
from llmcourse.modules.attention import record_attention


def attention_weights(model: nn.Module, ids: Sequence[int]) -> Tensor:
    """The attention weights of every self-attention layer of ``model`` on one sequence.

    Args:
        model: ``model(idx (1, T))``, with :class:`~llmcourse.modules.MultiHeadAttention`
            layers that all attend over the ``T`` positions (a decoder-only model such as
            :class:`~llmcourse.models.GPT`); run in eval mode without gradients.
        ids: the ``T`` token ids, at least one, at most the model's ``block_size``.

    Returns:
        ``(n_layers, n_heads, T, T)`` float32: entry ``[l, h, i, j]`` is the weight that
        query ``i`` of head ``h`` of layer ``l`` (in module order) gives to key ``j``.
        Every row sums to 1; with a causal mask, entries above the diagonal are 0.
    """
    ids = list(ids)
    if not ids or not all(is_int(i) for i in ids):
        raise ValueError(f"ids must be a non-empty list of token ids, got {ids!r:.80}")
    window = context_size(model)
    if window is not None and len(ids) > window:
        raise ValueError(f"the model reads at most {window} tokens, got {len(ids)}")
    with eval_no_grad(model), record_attention(model) as layers:
        if not layers:
            raise ValueError("the model has no MultiHeadAttention layer")
        device = next(model.parameters(), torch.empty(0)).device
        model(torch.tensor([ids], device=device))
    weights = [layer.last_weights for layer in layers]
    if any(w is None or w.shape[-2:] != (len(ids), len(ids)) for w in weights):
        raise ValueError("every attention layer must attend over the T input positions")
    return torch.stack([w[0] for w in weights]).float().cpu()


def attention_label(text: str) -> str:
    """A token's text as a tick label: :func:`~llmcourse.explorers.token_label`
    (``␣`` for a space, ``⏎`` for a newline), and ``<eot>`` for ``<|endoftext|>``."""
    return "<eot>" if text == EOT else token_label(text)


@dataclass(frozen=True)
class HeadMaps:
    """What one setting of the explorer shows.

    Attributes:
        layer: the layer, from 0.
        heads: the heads shown, from 0 (one, or all of the layer's).
        maps: ``(len(heads), T, T)`` their weights (rows: queries, columns: keys).
        strongest: for each head shown, the key the last query attends to most.
        strongest_weight: that key's weight, for each head shown.
    """

    layer: int
    heads: list[int]
    maps: Tensor
    strongest: list[int]
    strongest_weight: list[float]


@dataclass(frozen=True)
class AttentionView:
    """A model's attention on one text.

    Attributes:
        text: the text.
        ids: the ``T`` token ids the model read (with any start token ``encode`` adds).
        labels: ``T`` tick labels, one per token (:func:`attention_label`).
        weights: ``(n_layers, n_heads, T, T)``, :func:`attention_weights` of ``ids``.
    """

    text: str
    ids: list[int]
    labels: list[str]
    weights: Tensor

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    def maps(self, layer: int, head: int | None = None) -> HeadMaps:
        """The weights of ``head`` of ``layer`` (both from 0), or of all the layer's heads
        when ``head`` is None."""
        if not is_int(layer) or not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be an integer in [0, {self.n_layers}), got {layer!r}")
        if head is not None and (not is_int(head) or not 0 <= head < self.n_heads):
            raise ValueError(
                f"head must be an integer in [0, {self.n_heads}) or None (all heads), got {head!r}"
            )
        heads = list(range(self.n_heads)) if head is None else [head]
        maps = self.weights[layer, heads]
        best = maps[:, -1].max(dim=-1)
        return HeadMaps(layer, heads, maps, best.indices.tolist(), best.values.tolist())


def attention_view(
    model: nn.Module,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    text: str,
) -> AttentionView:
    """The attention of ``model`` on ``text``: ``encode(text)`` (with any start token),
    the weights of every layer and head, and a label per token (``decode`` of each id).

    Raises:
        ValueError: an empty text, or one longer than the model's ``block_size`` tokens.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("the text is empty: type a sentence")
    ids = list(encode(text))
    window = context_size(model)
    if window is not None and len(ids) > window:
        raise ValueError(
            f"the text is {len(ids)} tokens long; the model reads at most {window}: shorten it"
        )
    labels = [attention_label(decode([i])) for i in ids]
    return AttentionView(text, ids, labels, attention_weights(model, ids))


def _label_size(n: int) -> float:
    """A font size for ``n`` tick labels along an axis of a few inches."""
    return max(4.0, min(9.0, 180 / n))


class AttentionChart:
    """Heat maps of attention weights, rows queries and columns keys, on a fixed scale
    from 0 (white) to 1 (black), with the tokens as tick labels.

    Two figures: one large map for a single head, and a row of ``n_heads`` maps for all
    the heads of a layer, whose first map names the tokens for all (the maps share their
    rows and columns; drawing the labels is most of the time a new text takes). Each is
    drawn once per text; a new layer or head redraws only the images and the title
    (:class:`~llmcourse.explorers.widget.Blitter`).
    """

    def __init__(self, n_heads: int) -> None:
        self.n_heads = n_heads
        one = Figure(figsize=(6, 5.2), dpi=80)
        one.subplots_adjust(left=0.2, right=0.97, top=0.88, bottom=0.18)
        all_heads = Figure(figsize=(3 * n_heads, 3.7), dpi=80)
        all_heads.subplots_adjust(left=0.08, right=0.99, top=0.8, bottom=0.24, wspace=0.12)
        self.axes: dict[str, list[Axes]] = {
            "one": [one.add_subplot()],
            "all": list(all_heads.subplots(1, n_heads, squeeze=False)[0]),
        }
        self.images: dict[str, list[AxesImage]] = {}
        self.titles: dict[str, Text] = {}
        self.blitters: dict[str, Blitter] = {}
        self.labels: dict[str, list[str]] = {"one": [], "all": []}
        for kind, figure in (("one", one), ("all", all_heads)):
            empty = torch.zeros(1, 1).numpy()
            self.images[kind] = [
                ax.imshow(empty, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
                for ax in self.axes[kind]
            ]
            for ax in self.axes[kind]:
                ax.tick_params(length=0, pad=2)  # labels without tick marks: less to draw
            if kind == "one":
                self.titles[kind] = self.axes[kind][0].set_title("", fontsize=9)
            else:
                self.titles[kind] = figure.suptitle("", fontsize=9)
                for head, ax in enumerate(self.axes[kind]):
                    ax.set_title(f"head {head + 1}", fontsize=9)
            self.blitters[kind] = Blitter(figure, [*self.images[kind], self.titles[kind]])

    def _set_labels(self, kind: str, labels: Sequence[str]) -> None:
        """New tokens: new ticks, limits and a new background for figure ``kind``."""
        n, size = len(labels), _label_size(len(labels))
        for i, (ax, image) in enumerate(zip(self.axes[kind], self.images[kind], strict=True)):
            image.set_extent((-0.5, n - 0.5, n - 0.5, -0.5))
            ax.set_xlim(-0.5, n - 0.5)
            ax.set_ylim(n - 0.5, -0.5)
            if i == 0:
                ax.set_xticks(range(n), labels, rotation=90, fontsize=size)
                ax.set_yticks(range(n), labels, fontsize=size)
            else:  # the same tokens as the first map's; labels are most of the drawing time
                ax.set_xticks([])
                ax.set_yticks([])
        self.axes[kind][0].set_ylabel("query")
        self.axes[kind][0].set_xlabel("key")
        self.labels[kind] = list(labels)
        self.blitters[kind].redraw_background()

    def update(self, view: AttentionView, layer: int, head: int | None) -> HeadMaps:
        """Show ``view.maps(layer, head)`` in its figure; return what it shows."""
        if view.n_heads != self.n_heads:
            raise ValueError(f"the chart has {self.n_heads} heads, the view {view.n_heads}")
        shown = view.maps(layer, head)
        kind = "all" if head is None else "one"
        if self.labels[kind] != view.labels:
            self._set_labels(kind, view.labels)
        for image, weights in zip(self.images[kind], shown.maps, strict=True):
            image.set_data(weights.numpy())
        last = view.labels[-1]
        if head is None:
            self.titles[kind].set_text(
                f"layer {layer + 1}, all heads (rows: queries, columns: keys); "
                f"the last token {last} attends most to "
                + ", ".join(
                    f"{view.labels[j]} ({w:.2f})"
                    for j, w in zip(shown.strongest, shown.strongest_weight, strict=True)
                )
            )
        else:
            j, w = shown.strongest[0], shown.strongest_weight[0]
            self.titles[kind].set_text(
                f"layer {layer + 1}, head {head + 1}\n"
                f"the last token {last} attends most to {view.labels[j]} ({w:.2f})"
            )
        return shown

    def rendering(self, view: AttentionView, layer: int, head: int | None) -> Rendering:
        """:meth:`update`, then the figure shown as a PNG :class:`Rendering`."""
        shown = self.update(view, layer, head)
        targets = [
            f"{view.labels[j]} ({w:.2f})"
            for j, w in zip(shown.strongest, shown.strongest_weight, strict=True)
        ]
        heads = "all heads" if head is None else f"head {head + 1}"
        text = (
            f"layer {layer + 1}, {heads} on {view.text!r}: the last token attends most "
            f"to {', '.join(targets)}"
        )
        return self.blitters["all" if head is None else "one"].rendering(text)


def explore_attention(
    model: nn.Module,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    text: str = "the writers near the clever child are happy .",
    *,
    layer: int = 0,
    head: int | None = None,
) -> Explorer:
    """A widget: type a sentence, choose a layer and a head (or all heads), and see the
    attention weights of ``model`` as a heat map labelled with the tokens.

    Args:
        model: a model with :class:`~llmcourse.modules.MultiHeadAttention` layers, as in
            :func:`attention_weights`.
        encode: a text to the ids the model reads (with any start token).
        decode: a list of ids to text (used for one token at a time).
        text: the initial sentence.
        layer, head: the initial layer and head, from 0 (``head = None``: all heads).

    The controls are ``text`` (a text box, read on Enter), ``layer`` (a slider, values
    from 0, shown from 1) and ``head`` (``"all"`` or a head from 0, shown from 1). The model runs
    once per text; a new layer or head only redraws the picture. A text the model cannot
    read (empty, or longer than its ``block_size``) shows the reason instead.
    """
    first = attention_view(model, encode, decode, text)
    first.maps(layer, head)  # validate the initial layer and head
    cache: dict[str, AttentionView] = {text: first}
    chart = AttentionChart(first.n_heads)

    def view_of(sentence: str) -> AttentionView:
        if sentence not in cache:
            view = attention_view(model, encode, decode, sentence)  # may raise: no caching
            cache.clear()
            cache[sentence] = view
        return cache[sentence]

    def render(text: str, layer: int, head: int | str) -> Rendering:
        try:
            view = view_of(text)
        except ValueError as error:
            return html_rendering(f"<p><b>{html.escape(str(error))}</b></p>", str(error))
        return chart.rendering(view, layer, None if head == "all" else head)

    style = {"description_width": "initial"}
    controls = {
        "text": ipywidgets.Text(
            value=text,
            description="sentence",
            continuous_update=False,
            style=style,
            layout=ipywidgets.Layout(width="32em"),
        ),
        "layer": ipywidgets.SelectionSlider(
            options=[(str(i + 1), i) for i in range(first.n_layers)],
            value=layer,
            description="layer",
            style=style,
        ),
        "head": ipywidgets.Dropdown(
            options=[("all", "all"), *[(str(i + 1), i) for i in range(first.n_heads)]],
            value="all" if head is None else head,
            description="head",
            style=style,
            layout=ipywidgets.Layout(width="9em"),
        ),
    }
    return Explorer(controls, render, "explorer: attention weights per layer and head")
