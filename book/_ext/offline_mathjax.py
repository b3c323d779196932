"""Serve MathJax from the built book itself, so math renders without a network.

Sphinx loads MathJax from a CDN by default; a reader of a locally built book who is
offline would see raw LaTeX. The PyPI package ``django-static-mathjax`` (static
files only, no dependencies) ships MathJax 3; this extension copies the parts the
book needs (the TeX-to-HTML bundle, its fonts and its autoloaded TeX extensions,
about 2 MB) into ``_static/mathjax`` and points Sphinx at it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

BUNDLE = "tex-chtml.js"
PARTS = [BUNDLE, "output/chtml/fonts/woff-v2", "input/tex/extensions"]


def _source() -> Path:
    import mathjax  # the django-static-mathjax package

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_local_copy(app: Sphinx, config: Config) -> None:
    config.mathjax_path = f"mathjax/{BUNDLE}"


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = _source(), Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("config-inited", _use_local_copy)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
