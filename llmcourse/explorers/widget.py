"""The plumbing every explorer shares: controls, an output that redraws, a static picture.

An :class:`Explorer` is an ``ipywidgets`` box of controls above an ``Output``. Whenever a
control's value changes it calls its ``render`` function with the values of all the
controls, by name, and shows what it returns (a :class:`Rendering`: a PNG figure or an
HTML fragment) in the output. The pure computation behind each explorer lives in its own
module and is tested without any widget.

Where no kernel runs (the built book, a notebook viewer), a widget is only a reference
to a model that does not exist. So :meth:`Explorer._repr_mimebundle_` returns, next to
the widget's view, the explorer's current rendering as ``image/png`` or ``text/html``:
JupyterLab shows the live widget (its renderer ranks first), and the book, configured
to ignore ``application/vnd.jupyter.widget-view+json`` (``nb_mime_priority_overrides``
in ``_config.yml``), shows the picture of the initial state.

The output is replaced by setting ``Output.outputs`` directly, rather than by printing
inside ``with output:``: it needs no running IPython, so the tests can move a control
and read what the output shows.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ipywidgets
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

MIME_TYPES = ("image/png", "text/html")
"""What a :class:`Rendering` may hold."""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Rendering:
    """What an explorer shows: ``data`` of ``mime`` (base64 for a PNG, markup for HTML),
    and a one-line ``text`` for plain-text displays."""

    mime: str
    data: str
    text: str

    def __post_init__(self) -> None:
        if self.mime not in MIME_TYPES:
            raise ValueError(f"mime must be one of {MIME_TYPES}, got {self.mime!r}")

    @property
    def bundle(self) -> dict[str, str]:
        """The mime bundle ``{mime: data, "text/plain": text}``."""
        return {self.mime: self.data, "text/plain": self.text}

    def as_output(self) -> dict:
        """The rendering as one ``display_data`` output of a notebook (nbformat's schema)."""
        return {"output_type": "display_data", "data": self.bundle, "metadata": {}}


def figure_rendering(fig: Figure, text: str, dpi: int = 80) -> Rendering:
    """A matplotlib figure as a PNG :class:`Rendering` (the figure is not kept open:
    it was made with :class:`~matplotlib.figure.Figure`, not ``pyplot``, so no backend
    shows it a second time)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return Rendering("image/png", base64.b64encode(buffer.getvalue()).decode("ascii"), text)


class Blitter:
    """A figure whose few changing artists are redrawn over a background drawn once.

    Drawing a whole figure (axes, ticks, labels) takes tens of milliseconds; when only
    some lines and a title change, ``Blitter`` draws everything else once, keeps it as a
    bitmap, and for each rendering restores that bitmap and draws only ``artists``
    (matplotlib's *blitting*). The axes' limits must therefore stay fixed.

    Args:
        figure: a :class:`~matplotlib.figure.Figure` (not from ``pyplot``); its ``dpi``
            sets the size of the picture.
        artists: the artists that change; they are marked animated (left out of the
            background).
    """

    def __init__(self, figure: Figure, artists: list[Artist]) -> None:
        if not artists:
            raise ValueError("a Blitter needs at least one changing artist")
        self.figure = figure
        self.artists = artists
        for artist in artists:
            artist.set_animated(True)
        self.canvas = FigureCanvasAgg(figure)
        self.redraw_background()

    def redraw_background(self) -> None:
        """Draw everything but the changing artists again (after a change to the axes)."""
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def rendering(self, text: str) -> Rendering:
        """The figure as it is now, as a PNG :class:`Rendering`."""
        self.canvas.restore_region(self.background)
        for artist in self.artists:
            self.figure.draw_artist(artist)
        width, height = self.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba())
        buffer = io.BytesIO()
        image.save(buffer, format="png", compress_level=1)
        return Rendering("image/png", base64.b64encode(buffer.getvalue()).decode("ascii"), text)


def html_rendering(html: str, text: str) -> Rendering:
    """An HTML fragment as a :class:`Rendering`."""
    return Rendering("text/html", html, text)


class Explorer(ipywidgets.VBox):
    """Controls above an output that ``render(**values)`` redraws whenever a value changes.

    Args:
        controls: the widgets by name (each with a ``value``); ``render`` receives their
            values under these names. They are laid out in rows of ``per_row``.
        render: ``render(**values) -> Rendering``, pure: what to show for these values.
        description: a line of plain text that names the explorer (its ``text/plain``).
        per_row: controls per row.

    Attributes:
        controls: the widgets by name.
        output: the ``ipywidgets.Output`` that shows the rendering.
        rendering: the current :class:`Rendering`.
    """

    def __init__(
        self,
        controls: Mapping[str, ipywidgets.ValueWidget],
        render: Callable[..., Rendering],
        description: str,
        per_row: int = 3,
    ) -> None:
        if not controls:
            raise ValueError("an explorer needs at least one control")
        self.controls = dict(controls)
        self.description = description
        self._render = render
        self.output = ipywidgets.Output()
        widgets = list(self.controls.values())
        rows = [ipywidgets.HBox(widgets[i : i + per_row]) for i in range(0, len(widgets), per_row)]
        super().__init__([*rows, self.output])
        self.rendering = self.refresh()
        for control in widgets:
            control.observe(self._changed, names="value")

    @property
    def values(self) -> dict[str, object]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self) -> Rendering:
        """Render the current values and show them in :attr:`output`."""
        self.rendering = self._render(**self.values)
        self.output.outputs = (self.rendering.as_output(),)
        return self.rendering

    def _changed(self, change: dict) -> None:
        self.refresh()

    def __repr__(self) -> str:
        return f"<{self.description}>"

    def _repr_mimebundle_(self, **kwargs: object) -> dict[str, object] | None:
        """The widget's view and, for displays without a kernel, the current rendering."""
        data = super()._repr_mimebundle_(**kwargs)
        if data is None:  # a closed widget
            return None
        return {**data, **self.rendering.bundle}
