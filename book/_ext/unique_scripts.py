"""Write each script of a page once.

Sphinx 7.4 lists an inline script that an extension adds after the builder started
(sphinx-togglebutton's `togglebuttonSelector`, sphinx-thebe's `THEBE_JS_URL`) twice, once
with the filename None and once with ''; the second `const THEBE_JS_URL` then throws
"Identifier 'THEBE_JS_URL' has already been declared" on every page of the book. This
drops the repeats from each page's script list before the page is written.
"""

from __future__ import annotations

from sphinx.application import Sphinx


def _unique(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # the builder restores its own list after each page


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("html-page-context", _unique, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
