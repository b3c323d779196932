"""The built book (_build/html) as a reader sees it, in headless Chromium, offline.

For every page of the table of contents (_toc.yml): it loads with no console error,
no failed request and no request off the site; MathJax (served by the book itself)
has typeset every formula; every image has loaded; the download button serves the
page's notebook; every same-site link resolves (and its #anchor exists). For every
chapter, the search page finds a word of the chapter's own title.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import urllib.error
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import nbformat
import pytest
import yaml
from support import LOCAL, ROOT, Recorder, free_port, screenshot

BOOK = ROOT / "_build" / "html"
SCREENSHOT_PAGE = "book/ch06_transformer"  # also the chapter whose search result is saved
TIMEOUT_MS = 60_000


def toc_files() -> list[str]:
    """The docnames of _toc.yml (root first), e.g. 'book/ch06_transformer'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key))
    return files


PAGES = toc_files()
CHAPTERS = PAGES[1:]


def source_of(docname: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{docname}{suffix}").is_file():
            return ROOT / f"{docname}{suffix}"
    raise FileNotFoundError(f"no source for {docname}")


MATH_IN_SOURCE = re.compile(r"\$\$|\$[^\s$][^$\n]*\$|\\begin\{")


def source_has_math(docname: str) -> bool:
    path = source_of(docname)
    if path.suffix == ".ipynb":
        notebook = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    text = re.sub(r"```.*?```|`[^`\n]*`", "", text, flags=re.S)  # code is not math
    return bool(MATH_IN_SOURCE.search(text))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """The built book served on a loopback port for the duration of this module."""
    if not (BOOK / "index.html").is_file():
        pytest.fail(f"no built book at {BOOK}: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(BOOK))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser):
    """A new reader: a fresh browser context (no cookies, no local storage) and one tab."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


@functools.cache
def fetch(url: str) -> tuple[int, str]:
    """Status and text of a same-site URL (no fragment), cached across pages."""
    try:
        with LOCAL.open(url, timeout=30) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


def ids_of(html: str) -> set[str]:
    return set(re.findall(r'\b(?:id|name)="([^"]+)"', html))


def require_built(docname: str) -> None:
    if not (BOOK / f"{docname}.html").is_file():
        pytest.fail(
            f"{docname} is in _toc.yml but not in {BOOK}: the build is stale, run `make book`"
        )


# Text a reader sees outside code, figures and typeset maths: raw TeX there means
# MathJax or the MyST parser left a formula untypeset.
VISIBLE_PROSE_JS = """() => {
  const root = (document.querySelector('article.bd-article') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
      .forEach(e => e.remove());
  return root.textContent;
}"""
RAW_TEX = re.compile(r"\$\$|\\[A-Za-z]{2,}|\\[()\[\]]")

IMAGES_JS = """async () => {
  const images = [...document.images];
  await Promise.all(images.map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""

MATH_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const nodes = [...document.querySelectorAll('article .math')];
  return {
    mathjax: !!(window.MathJax && MathJax.version),
    nodes: nodes.length,
    untypeset: nodes.filter(n => !n.querySelector('mjx-container'))
                    .map(n => n.textContent.slice(0, 80)),
    typeset: document.querySelectorAll('article mjx-container').length,
  };
}"""


@pytest.mark.parametrize("docname", PAGES)
def test_page(site, page, docname):
    require_built(docname)
    recorder = Recorder(page, site)
    url = f"{site}/{docname}.html"
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: {response}"
    page.wait_for_load_state("networkidle")
    problems: list[str] = []

    # Maths: MathJax ran and typeset every formula; no raw TeX left in the prose.
    math = page.evaluate(MATH_JS)
    if source_has_math(docname):
        if not math["mathjax"]:
            problems.append("the source has maths but MathJax did not load")
        if math["typeset"] == 0:
            problems.append("the source has maths but the page has no mjx-container")
    problems += [f"formula not typeset: {tex!r}" for tex in math["untypeset"]]
    prose = page.evaluate(VISIBLE_PROSE_JS)
    for match in RAW_TEX.finditer(prose):
        around = prose[max(0, match.start() - 40) : match.end() + 40].replace("\n", " ")
        problems.append(f"raw TeX in the text: ...{around}...")

    # Images: every <img> has loaded.
    for image in page.evaluate(IMAGES_JS):
        if not image["width"]:
            problems.append(f"image did not load: {image['src']}")

    # Download button: the page's notebook (or Markdown source) is served, and valid.
    downloads = page.eval_on_selector_all(
        ".dropdown-download-buttons a[href]",
        "links => links.map(a => ({href: a.href, text: a.textContent.trim()}))",
    )
    wanted = source_of(docname).suffix
    offered = [d for d in downloads if d["text"] == wanted]
    if not offered:
        problems.append(f"the download button offers no {wanted}: {downloads}")
    for link in offered:
        status, text = fetch(link["href"])
        if status != 200:
            problems.append(f"download {link['href']}: HTTP {status}")
        elif wanted == ".ipynb":
            try:
                notebook = nbformat.reads(text, as_version=4)
                nbformat.validate(notebook)
            except (json.JSONDecodeError, nbformat.ValidationError) as err:
                problems.append(f"download {link['href']} is not a valid notebook: {err}")
            else:
                title = page.inner_text("article h1").rstrip("#").strip()
                first = next(c.source for c in notebook.cells if c.cell_type == "markdown")
                if first.splitlines()[0].lstrip("# ").strip() != title:
                    problems.append(f"download {link['href']} is not the notebook of {title!r}")

    # Launch buttons: a chapter opens on Binder and Colab from the repository of _config.yml.
    repository = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get(
        "url"
    )
    if wanted == ".ipynb" and repository:
        owner_repo = "/".join(repository.rstrip("/").split("/")[-2:])
        launch = page.eval_on_selector_all(
            ".dropdown-launch-buttons a[href]",
            "links => links.map(a => ({href: a.href, text: a.textContent.trim()}))",
        )
        for service in ("Binder", "Colab"):
            if not any(
                link["text"] == service
                and owner_repo in link["href"]
                and f"{docname}.ipynb" in link["href"]
                for link in launch
            ):
                problems.append(f"no {service} launch button for {owner_repo}: {launch}")

    # Links: every same-site href answers 200, and its #anchor exists there.
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    for href in sorted(set(hrefs)):
        if not href.startswith(site + "/"):
            continue
        target, fragment = urldefrag(href)
        status, html = fetch(target)
        if status != 200:
            problems.append(f"broken link {href}: HTTP {status}")
        elif fragment and unquote(fragment) not in ids_of(html):
            problems.append(f"broken anchor {href}: no id {unquote(fragment)!r} there")

    if docname == SCREENSHOT_PAGE:
        screenshot(page, docname.replace("/", "_"))
        figure = page.locator("article img").first
        if figure.count():
            figure.scroll_into_view_if_needed()
            screenshot(page, docname.replace("/", "_") + "_figure")

    problems += recorder.problems()
    assert not problems, f"{url}:\n  " + "\n  ".join(problems)


# --- search ---------------------------------------------------------------------

STOPWORDS = {"and", "the", "with", "from", "into", "for", "its", "their", "that", "this"}


def built_title(docname: str) -> str:
    """The page's <h1>, without its chapter number: 'The Transformer'."""
    require_built(docname)
    html = (BOOK / f"{docname}.html").read_text()
    match = re.search(r"<h1>(.*?)<", html, flags=re.S)
    assert match, f"no <h1> in {docname}.html"
    return re.sub(r"^\s*[\d.]+\s*", "", match.group(1)).strip()


def shared_by_other_titles(word: str, docname: str) -> int:
    """How many other pages of the table of contents have ``word`` in their title."""
    return sum(
        word.lower() in re.findall(r"[a-z]+", built_title(other).lower())
        for other in PAGES
        if other != docname and (BOOK / f"{other}.html").is_file()
    )


def search_term(docname: str) -> str:
    """The word of the chapter's title that the fewest other titles share (longest first)."""
    title = built_title(docname)
    words = [
        w for w in re.findall(r"[A-Za-z]+", title) if len(w) >= 4 and w.lower() not in STOPWORDS
    ]
    assert words, f"no searchable word in the title {title!r}"
    return min(words, key=lambda w: (shared_by_other_titles(w, docname), -len(w)))


@pytest.mark.parametrize("docname", CHAPTERS)
def test_search_finds_chapter(site, page, docname):
    term = search_term(docname)
    recorder = Recorder(page, site)
    page.goto(f"{site}/search.html", wait_until="load")
    search_box = page.locator(".bd-search-container form.bd-search input[name=q]")
    search_box.fill(term)
    search_box.press("Enter")
    page.wait_for_function(
        "() => /Search finished|did not match/.test("
        "(document.querySelector('#search-results .search-summary') || {}).textContent || '')"
    )
    page.wait_for_load_state("networkidle")  # the result summaries are fetched after
    found = page.eval_on_selector_all(
        "#search-results ul.search li a[href]", "links => links.map(a => a.href)"
    )
    paths = [urlsplit(href).path for href in found]
    if docname == SCREENSHOT_PAGE:
        screenshot(page, f"search_{term.lower()}")
    assert f"/{docname}.html" in paths, f"searching {term!r} did not find {docname}: {found}"
    assert not recorder.problems(), "\n".join(recorder.problems())
