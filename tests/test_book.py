"""The book's structure: the table of contents, the configuration and the chapter files."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("ch*.ipynb"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:  # a split chapter lists its later pages as sections
            files += [chapter["file"], *(page["file"] for page in chapter.get("sections", []))]
    return files


def test_every_toc_entry_exists():
    for entry in toc_files():
        matches = [p for p in (ROOT / f"{entry}.ipynb", ROOT / f"{entry}.md") if p.exists()]
        assert matches, f"_toc.yml lists {entry}, which is neither {entry}.ipynb nor {entry}.md"


def test_every_chapter_is_in_the_toc():
    listed = set(toc_files())
    for chapter in CHAPTERS:
        assert f"book/{chapter.stem}" in listed, f"{chapter.name} is missing from _toc.yml"


def test_book_executes_chapters_and_fails_on_errors():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "force"
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_stored_without_outputs(chapter):
    notebook = nbformat.read(chapter, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{chapter.name} cell {index} has stored outputs"
            assert cell.execution_count is None, f"{chapter.name} cell {index} has a count"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.cells[0].source.startswith("# "), "a chapter starts with its title"


# ------------------------------------------------------------------ the chapter skeleton
#
# Every chapter has the same shape: the title "# N. Title"; before the first section, the
# objectives ("By the end of the chapter you will be able to" and a list); numbered
# sections "## N.1 ...", "## N.2 ..."; and then exactly "## Summary", "## Exercises" and
# "## References". A long chapter may be split into pages chNNa_name, chNNb_name, ...: the
# first page has the title and the objectives, every later page its own "# Title", the
# sections are numbered on from page to page, and only the last page ends with the three
# (its exercise notebook is the one solutions/chNN_name.ipynb). The Exercises section
# names the exercise notebook and every exercise by its answer id, read from the tagged
# cells of the solution notebook, so that adding an exercise without mentioning it fails
# here. Numbers in prose come from the executed cells through myst-nb's glue
# (CONTRIBUTING.md); the glue tests check the names, which are string literals so that a
# reader can find the cell behind a pasted number.

SECTION = re.compile(r"^## (.+?)\s*$", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")
GLUE_REFERENCE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)(?::[^`]*)?`")
GLUE_CALL = re.compile(r"\bglue\(\s*([^,)]*)")  # the first argument: a name, quoted
OBJECTIVES = re.compile(r"By\s+the\s+end\s+of\s+(?:the|this)\s+chapter")
BIB_KEYS = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book/references.bib").read_text(), re.M))
TAIL = ["Summary", "Exercises", "References"]


def chapter_number(chapter: Path) -> int:
    match = re.fullmatch(r"ch(\d\d)[a-z]?_\w+", chapter.stem)
    assert match, f"{chapter.name}: a chapter file is named chNN_name.ipynb (or chNNa_name.ipynb)"
    return int(match.group(1))


def pages(chapter: Path) -> list[Path]:
    """The pages of the chapter of ``chapter``, in order (one, unless it is split)."""
    number = chapter_number(chapter)
    return [page for page in CHAPTERS if chapter_number(page) == number]


def exercise_notebook(chapter: Path) -> str:
    """The chapter's exercise notebook: ``chNN_name`` (one per chapter, split or not)."""
    if not re.fullmatch(r"ch\d\d[a-z]_\w+", chapter.stem):
        return chapter.stem
    found = sorted((ROOT / "solutions").glob(f"ch{chapter_number(chapter):02d}_*.ipynb"))
    return found[0].stem if len(found) == 1 else f"ch{chapter_number(chapter):02d}_<name>"


def markdown_of(notebook) -> str:
    """The chapter's Markdown, cell after cell, without fenced blocks (which hold no headings)."""
    text = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return FENCE.sub("", text)


def split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first "## " heading, and each (heading, body) after it."""
    parts = SECTION.split(text)
    return parts[0], list(zip(parts[1::2], parts[2::2], strict=True))


def answer_ids(solution: Path) -> list[str]:
    notebook = nbformat.read(solution, as_version=4)
    return [
        tag.removeprefix("answer:")
        for cell in notebook.cells
        for tag in cell.metadata.get("tags", [])
        if tag.startswith("answer:")
    ]


def numbered_sections(chapter: Path) -> list[str]:
    _, sections = split_sections(markdown_of(nbformat.read(chapter, as_version=4)))
    return [heading for heading, _ in sections if heading not in TAIL]


def skeleton_problems(chapter: Path) -> list[str]:
    number = chapter_number(chapter)
    notebook = nbformat.read(chapter, as_version=4)
    text = markdown_of(notebook)
    preamble, sections = split_sections(text)
    problems = []
    siblings = pages(chapter)
    first, last = chapter == siblings[0], chapter == siblings[-1]
    split = len(siblings) > 1 or bool(re.fullmatch(r"ch\d\d[a-z]_\w+", chapter.stem))
    if split:
        letters = [re.fullmatch(r"ch\d\d([a-z])_\w+", p.stem) for p in siblings]
        if not all(letters) or [m.group(1) for m in letters] != list("abcdefgh"[: len(siblings)]):
            problems.append("the pages of a split chapter are chNNa_name, chNNb_name, ...")
    start = 1 + sum(len(numbered_sections(p)) for p in siblings[: siblings.index(chapter)])

    if first and not re.match(rf"# {number}\. \S", notebook.cells[0].source):
        problems.append(f'the first cell must start with the title "# {number}. Title"')

    objectives = OBJECTIVES.search(preamble) if first else True  # on the first page only
    if objectives is None:
        problems.append(
            'the objectives: "By the end of the chapter you will be able to" and a list '
            "must come before the first section"
        )
    elif first:
        # the paragraph with the phrase, then a paragraph that is a list of two items or more
        paragraphs = re.split(r"\n\s*\n", preamble[objectives.start() :])
        items = re.findall(r"^(?:[-*]|\d+\.) ", paragraphs[1], re.M) if paragraphs[1:] else []
        if len(items) < 2:
            problems.append("the objectives must be followed by a list of at least two items")

    headings = [heading for heading, _ in sections]
    if last and headings[-3:] != TAIL:
        problems.append(f"the last sections must be {TAIL}, got {headings[-3:]}")
    if not last and set(headings) & set(TAIL):
        problems.append(f"only the last page of a split chapter has {TAIL}")
    numbered = [heading for heading in headings if heading not in TAIL]
    expected = [f"{number}.{k}" for k in range(start, start + len(numbered))]
    found = [heading.split(" ", 1)[0] for heading in numbered]
    fewest = 1 if split else 2
    if len(numbered) < fewest or found != expected or any(" " not in h for h in numbered):
        problems.append(
            f'sections must be numbered "## {number}.{start} Title", '
            f'"## {number}.{start + 1} Title", ... (at least {fewest}) before {TAIL}; '
            f"got {numbered}"
        )

    body = dict(sections)
    if "Exercises" in body:
        exercises = body["Exercises"]
        stem = exercise_notebook(chapter)
        notebook_path = f"exercises/{stem}.ipynb"
        solution = ROOT / "solutions" / f"{stem}.ipynb"
        if not (ROOT / notebook_path).exists() or not solution.exists():
            problems.append(f"{notebook_path} or its solution notebook does not exist")
        else:
            if f"`{notebook_path}`" not in exercises:
                problems.append(f"the Exercises section must name `{notebook_path}`")
            ids = answer_ids(solution)
            positions = [exercises.find(f"`{i}`") for i in ids]
            if not ids or -1 in positions or positions != sorted(positions):
                problems.append(
                    f"the Exercises section must name every exercise by its answer id, in "
                    f"the order of the solution notebook: {', '.join(f'`{i}`' for i in ids)}"
                )
    if "References" in body and not CITE.search(body["References"]):
        problems.append("the References section must cite its sources with {cite} roles")

    unknown = sorted(
        {key.strip() for keys in CITE.findall(text) for key in keys.split(",")} - BIB_KEYS
    )
    if unknown:
        problems.append(f"cited keys missing from book/references.bib: {unknown}")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_follows_the_skeleton(chapter):
    problems = skeleton_problems(chapter)
    assert not problems, f"{chapter.name}:\n- " + "\n- ".join(problems)


def glue_names(notebook) -> list[str]:
    """The names of the chapter's glue calls, each a string literal."""
    names = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for argument in GLUE_CALL.findall(cell.source):
                name = re.fullmatch(r"\s*[\"'](\w+)[\"']\s*", argument)
                assert name, f"glue({argument}...): write the name as a string literal"
                names.append(name.group(1))
    return names


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_glued_numbers_are_computed_in_the_chapter(chapter):
    notebook = nbformat.read(chapter, as_version=4)
    glued = glue_names(notebook)
    prefix = f"ch{chapter_number(chapter):02d}_"
    assert all(name.startswith(prefix) for name in glued), (
        f"{chapter.name}: glue names start with {prefix} (they are global to the book): "
        f"{[name for name in glued if not name.startswith(prefix)]}"
    )
    repeated = sorted({name for name in glued if glued.count(name) > 1})
    assert not repeated, f"{chapter.name}: glued twice: {repeated}"
    used = set(GLUE_REFERENCE.findall(markdown_of(notebook)))
    assert used <= set(glued), (
        f"{chapter.name}: pasted but never glued: {sorted(used - set(glued))}"
    )
    assert set(glued) <= used, (
        f"{chapter.name}: glued but never pasted: {sorted(set(glued) - used)}"
    )


def test_glue_reference_pattern():
    # The patterns of the two tests above, on the forms the chapters use.
    text = "a {glue:text}`ch02_ppl` b {glue}`ch02_fig` c {glue:text}`ch02_x:.2f` d"
    assert GLUE_REFERENCE.findall(text) == ["ch02_ppl", "ch02_fig", "ch02_x"]
    assert GLUE_CALL.findall('glue("ch02_ppl", f"{ppl:.2f}", display=False)') == ['"ch02_ppl"']
    assert OBJECTIVES.search("By the end\nof the chapter you will")
    assert split_sections("intro\n## 2.1 A\nbody\n## Summary\nend") == (
        "intro\n",
        [("2.1 A", "\nbody\n"), ("Summary", "\nend")],
    )
