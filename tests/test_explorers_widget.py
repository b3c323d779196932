"""Tests of llmcourse.explorers.widget: an explorer redraws its output when a control moves,
and its mime bundle carries a static rendering next to the widget's view."""

from __future__ import annotations

import base64

import ipywidgets
import numpy as np
import pytest
from matplotlib.figure import Figure

from llmcourse.explorers import (
    WIDGET_VIEW,
    Blitter,
    Explorer,
    Rendering,
    figure_rendering,
    html_rendering,
)


def squares(n: int, label: str) -> Rendering:
    return html_rendering(f"<p>{label}: {n * n}</p>", f"{label} {n * n}")


def explorer() -> Explorer:
    controls = {
        "n": ipywidgets.IntSlider(value=3, min=0, max=10),
        "label": ipywidgets.Text(value="square"),
    }
    return Explorer(controls, squares, "explorer: squares")


def test_the_output_shows_the_initial_rendering():
    ex = explorer()
    assert ex.values == {"n": 3, "label": "square"}
    assert ex.rendering == squares(3, "square")
    (output,) = ex.output.outputs
    assert output == {
        "output_type": "display_data",
        "data": {"text/html": "<p>square: 9</p>", "text/plain": "square 9"},
        "metadata": {},
    }


def test_moving_a_control_redraws_the_output():
    ex = explorer()
    ex.controls["n"].value = 7
    assert ex.output.outputs[0]["data"]["text/html"] == "<p>square: 49</p>"
    ex.controls["label"].value = "area"
    assert ex.output.outputs[0]["data"]["text/html"] == "<p>area: 49</p>"
    assert len(ex.output.outputs) == 1  # replaced, not appended


def test_the_mime_bundle_holds_the_widget_view_and_the_static_rendering():
    ex = explorer()
    bundle = ex._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == ex.model_id
    assert bundle["text/html"] == "<p>square: 9</p>"
    assert bundle["text/plain"] == "square 9"  # not "VBox(children=...)"
    ex.controls["n"].value = 2  # the bundle shows the current state
    assert ex._repr_mimebundle_()["text/html"] == "<p>square: 4</p>"
    ex.close()
    assert ex._repr_mimebundle_ is None  # ipywidgets' convention for a closed widget


def test_the_layout_holds_the_controls_then_the_output():
    ex = explorer()
    rows = ex.children[:-1]
    assert ex.children[-1] is ex.output
    assert [c for row in rows for c in row.children] == list(ex.controls.values())
    assert "explorer: squares" in repr(ex)


def test_a_figure_rendering_is_a_png():
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    rendering = figure_rendering(fig, "a line", dpi=50)
    png = base64.b64decode(rendering.data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (100, 50)
    assert rendering.bundle == {"image/png": rendering.data, "text/plain": "a line"}


def png_pixels(rendering: Rendering):
    from io import BytesIO

    from PIL import Image

    return Image.open(BytesIO(base64.b64decode(rendering.data))).convert("RGB")


def test_a_blitter_redraws_its_artists_over_a_fixed_background():
    fig = Figure(figsize=(2, 1), dpi=50)
    ax = fig.add_subplot()
    ax.set(xlim=(0, 1), ylim=(0, 1))
    (line,) = ax.plot([0, 1], [0, 0], color="red", lw=4)
    blitter = Blitter(fig, [line])
    low = png_pixels(blitter.rendering("low"))
    line.set_ydata([1, 1])
    high = png_pixels(blitter.rendering("high"))
    assert low.size == high.size == (100, 50)
    assert not np.array_equal(np.asarray(low), np.asarray(high))  # the line moved...
    line.set_ydata([0, 0])
    again = png_pixels(blitter.rendering("low"))
    assert np.array_equal(np.asarray(again), np.asarray(low))  # ...and the old one is gone
    # the same picture as drawing the whole figure, but for the few pixels where the
    # line, drawn last, now covers the axes' frame
    fig_full = Figure(figsize=(2, 1), dpi=50)
    ax_full = fig_full.add_subplot()
    ax_full.set(xlim=(0, 1), ylim=(0, 1))
    ax_full.plot([0, 1], [0, 0], color="red", lw=4)
    full = png_pixels(figure_rendering(fig_full, "full", dpi=50))
    differ = (np.asarray(full) != np.asarray(low)).any(axis=-1).mean()
    assert differ < 0.03
    with pytest.raises(ValueError, match="at least one changing artist"):
        Blitter(fig, [])


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="mime must be one of"):
        Rendering("text/markdown", "x", "x")
    with pytest.raises(ValueError, match="at least one control"):
        Explorer({}, squares, "nothing")
