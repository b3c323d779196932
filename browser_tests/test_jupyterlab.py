"""The course in JupyterLab, as a reader uses it, in headless Chromium.

JupyterLab runs on a loopback port with a token, on a temporary copy of the notebooks
(it never opens the repository's files). The tests click through its menus: an exercise
notebook, with the reference answers filled in, runs from top to bottom and its
self-check cell prints the grader's report; in a notebook with an ipywidgets explorer
(a small fixture, and chapter 8), dragging a slider redraws the explorer's output. No
page may log a console error, throw, fail a request or reach off the machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from support import LOCAL, ROOT, Recorder, free_port, screenshot

HERE = Path(__file__).resolve().parent
# The exercise whose notebook and self-check run fastest (measured; see README.md).
EXERCISE = "ch01_ngrams"
SELF_CHECK_TIMEOUT_S = 900  # the grader's own limit (llmcourse.grading.selfcheck.TIMEOUT_S)
RUN_TIMEOUT_S = int(os.environ.get("BROWSER_TEST_RUN_TIMEOUT", 600))
# JupyterLab settings for a quiet, deterministic session: every cell kept in the page
# (no virtual scrolling), no news or update checks over the network.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
SLIDER = ".jupyter-widgets input[type=range], .widget-slider"


EXPLORER = re.compile(r"\bimport ipywidgets\b|\bfrom ipywidgets\b|\bllmcourse\.explorers\b")


def has_widget_explorer(path: Path) -> bool:
    """Does the notebook's code build an ipywidgets explorer (its own or the package's)?"""
    notebook = nbformat.read(path, as_version=4)
    return any(EXPLORER.search(c.source) for c in notebook.cells if c.cell_type == "code")


# Notebooks with an ipywidgets explorer: the fixture, and a chapter that has one
# (BROWSER_TEST_CHAPTERS=all: every chapter of the book that has one; a minute each).
WIDGET_FIXTURE = "notebooks/widget_explorer.ipynb"
WIDGET_CHAPTERS = (
    sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "book").glob("ch*.ipynb")
        if has_widget_explorer(p)
    )
    if os.environ.get("BROWSER_TEST_CHAPTERS") == "all"
    else ["book/ch08_decoding.ipynb"]
)


def solved_exercise(name: str) -> nbformat.NotebookNode:
    """The exercise notebook with each answer cell replaced by the reference solution's."""
    exercise = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)

    def answer_tag(cell):
        return next((t for t in cell.metadata.get("tags", []) if t.startswith("answer:")), None)

    answers = {answer_tag(c): c.source for c in solution.cells if answer_tag(c)}
    filled = 0
    for cell in exercise.cells:
        tag = answer_tag(cell)
        if tag:
            cell.source = answers[tag]
            filled += 1
    assert filled, f"exercises/{name}.ipynb has no answer cells"
    return exercise


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, serving a temporary copy of the notebooks."""
    home = tmp_path_factory.mktemp("jupyterlab")
    root = home / "root"
    (root / "exercise").mkdir(parents=True)
    nbformat.write(solved_exercise(EXERCISE), root / "exercise" / f"{EXERCISE}.ipynb")
    (root / "notebooks").mkdir()
    shutil.copy(HERE / WIDGET_FIXTURE, root / WIDGET_FIXTURE)
    (root / "book").mkdir()
    for chapter in WIDGET_CHAPTERS:
        shutil.copy(ROOT / chapter, root / chapter)
    settings = home / "settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))

    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        MPLCONFIGDIR=str(home / "matplotlib"),
        PYTHONHASHSEED="0",
    )
    command = [
        str(Path(sys.executable).parent / "jupyter-lab"),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI and this project's machines run as root
        command.append("--allow-root")
    log = (home / "jupyterlab.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with LOCAL.open(f"{base}/api/status?token={token}", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    output = (home / "jupyterlab.log").read_text()
                    pytest.fail(f"JupyterLab did not start:\n{output}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "root": root, "log": home / "jupyterlab.log"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def lab_context(browser):
    """One browser profile for the module: JupyterLab's scripts load from its cache."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(300_000)  # a cold JupyterLab on a busy 2-core machine: minutes
    yield context
    context.close()


@pytest.fixture
def lab_page(lab_context, lab):
    page = lab_context.new_page()
    recorder = Recorder(page, lab["base"])
    yield page, recorder
    page.close()


NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_notebook(page, lab, path: str) -> None:
    """Open the notebook in a fresh JupyterLab workspace and wait for its idle kernel."""
    workspace = re.sub(r"\W", "-", path)
    page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{path}?token={lab['token']}")
    page.wait_for_selector(f"{NOTEBOOK} .jp-Notebook .jp-Cell")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # Before it knows the kernels, JupyterLab may ask which one to start: the default.
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count() and dialog.first.is_visible():
            dialog.first.click()
        kernel = page.evaluate(
            "(nb) => (document.querySelector(nb + ' .jp-Toolbar-kernelName') || {}).textContent",
            NOTEBOOK,
        )
        idle = page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status='idle']")
        if kernel and kernel.strip() != "No Kernel" and idle.count():
            return
        page.wait_for_timeout(500)
    pytest.fail(f"{path}: no kernel started ({screenshot(page, 'jupyterlab_no_kernel')})")


def menu(page, top: str, command: str) -> None:
    """Click a command of JupyterLab's menu bar, e.g. Run > Run All Cells."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


CELL_STATES_JS = """(notebook) => ({
  idle: !!document.querySelector(
      notebook + ' .jp-Notebook-ExecutionIndicator[data-status="idle"]'),
  prompts: [...document.querySelectorAll(notebook + ' .jp-CodeCell .jp-InputPrompt')]
      .map(p => p.textContent.trim()),
})"""


def run_all_and_save(page, lab, path: str) -> nbformat.NotebookNode:
    """Run > Run All Cells, wait until the kernel is done, File > Save; the saved notebook."""
    menu(page, "Run", "runmenu:run-all")
    try:
        page.wait_for_function(
            f"""(notebook) => {{
              const s = ({CELL_STATES_JS})(notebook);
              return s.idle && /\\[\\d+\\]/.test(s.prompts[0]) &&
                     !s.prompts.some(p => p.includes('*'));
            }}""",
            arg=NOTEBOOK,
            timeout=RUN_TIMEOUT_S * 1000,
            polling=500,
        )
    except PlaywrightTimeoutError:
        shot = screenshot(page, f"jupyterlab_timeout_{Path(path).stem}")
        pytest.fail(f"{path} did not finish: {page.evaluate(CELL_STATES_JS, NOTEBOOK)} ({shot})")
    menu(page, "File", "docmanager:save")
    # The tab's unsaved-changes mark goes once the save is done.
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)")
    notebook = nbformat.read(lab["root"] / path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, c in enumerate(code)
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, f"{path} raised in JupyterLab:\n" + "\n".join(errors)
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not not_run, f"{path}: code cells {not_run} did not run"
    return notebook


def test_exercise_runs_and_self_checks(lab, lab_page):
    page, recorder = lab_page
    path = f"exercise/{EXERCISE}.ipynb"
    started = time.monotonic()
    open_notebook(page, lab, path)
    run_all_and_save(page, lab, path)  # the last cell is the self-check: it ran too
    ran = time.monotonic() - started

    # Run the self-check cell once more, as a reader does after saving, and read its report.
    check_cell = page.locator(f"{NOTEBOOK} .jp-CodeCell", has_text="self_check(").last
    prompt = check_cell.locator(".jp-InputPrompt")
    count_before = prompt.inner_text().strip()
    check_cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")  # run the cell, stay on it
    page.wait_for_function(
        r"""([prompt, before]) => /\[\d+\]/.test(prompt.textContent) &&
                                  prompt.textContent.trim() !== before""",
        arg=[prompt.element_handle(), count_before],
        timeout=SELF_CHECK_TIMEOUT_S * 1000,
    )
    report = check_cell.locator(".jp-OutputArea").inner_text()
    check_cell.scroll_into_view_if_needed()
    screenshot(page, f"jupyterlab_{EXERCISE}_self_check")
    print(
        f"\n{path}: ran all cells in {ran:.0f} s, self-check again in "
        f"{time.monotonic() - started - ran:.0f} s"
    )
    assert f"Self-check of {EXERCISE}.ipynb" in report, report
    assert "All visible tests pass." in report, report
    assert re.search(r"total: (\d+)/\1", report), report
    assert not recorder.problems(), "\n".join(recorder.problems())


def output_snapshot(cell) -> str:
    """What the cell's outputs show, less the slider widgets themselves (label, readout)."""
    return cell.evaluate(
        """cell => {
          const area = cell.querySelector('.jp-Cell-outputArea').cloneNode(true);
          area.querySelectorAll('.widget-slider, input[type=range]').forEach(e => e.remove());
          const images = [...area.querySelectorAll('img')].map(i => i.src).join('|');
          const svgs = [...area.querySelectorAll('svg')].map(s => s.outerHTML).join('|');
          return area.textContent + '|' + images + '|' + svgs;
        }"""
    )


def slider_value(slider) -> str:
    return slider.evaluate(
        """s => s.matches('input[type=range]') ? s.value
               : s.querySelector('.widget-readout').textContent.trim()"""
    )


def move_slider(page, slider) -> None:
    """Drag the slider's handle to 70% of its track, as a reader would with the mouse."""
    if slider.evaluate("s => s.matches('input[type=range]')"):
        slider.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        return
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target").first
    box, bar = handle.bounding_box(), track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(bar["x"] + bar["width"] * 0.7, y, steps=10)
    page.mouse.up()


def explore(page, lab, path: str, name: str) -> tuple[str, str, str, str]:
    """Run the notebook and drag its first slider: outputs and values before and after."""
    open_notebook(page, lab, path)
    run_all_and_save(page, lab, path)
    cell = page.locator(f"{NOTEBOOK} .jp-CodeCell").filter(has=page.locator(SLIDER)).first
    slider = cell.locator(SLIDER).first
    slider.scroll_into_view_if_needed()
    before, value_before = output_snapshot(cell), slider_value(slider)
    screenshot(page, f"jupyterlab_{name}_before")
    started = time.monotonic()
    move_slider(page, slider)
    after = output_snapshot(cell)
    while after == before and time.monotonic() - started < 60:
        page.wait_for_timeout(50)
        after = output_snapshot(cell)
    redrawn = time.monotonic() - started
    page.wait_for_timeout(500)  # let a redraw in progress finish before the screenshot
    after, value_after = output_snapshot(cell), slider_value(slider)
    screenshot(page, f"jupyterlab_{name}_after")
    print(f"\n{path}: slider {value_before} -> {value_after}, output redrawn in {redrawn:.2f} s")
    return before, after, value_before, value_after


def test_widget_fixture_redraws_on_slider(lab, lab_page):
    page, recorder = lab_page
    before, after, value_before, value_after = explore(page, lab, WIDGET_FIXTURE, "widget_fixture")
    assert value_after != value_before, "the slider did not move"
    assert after != before, "the output did not change when the slider moved"
    n = int(re.search(r"n = (\d+)", after).group(1))
    assert n == int(value_after), f"the output shows n = {n}, the slider {value_after}"
    assert f"n squared = {n * n}" in after, after
    assert not recorder.problems(), "\n".join(recorder.problems())


@pytest.mark.parametrize("chapter", WIDGET_CHAPTERS)
def test_chapter_explorer_redraws_on_slider(lab, lab_page, chapter):
    assert has_widget_explorer(ROOT / chapter), f"{chapter} has no ipywidgets explorer"
    page, recorder = lab_page
    before, after, value_before, value_after = explore(page, lab, chapter, Path(chapter).stem)
    assert value_after != value_before, "the slider did not move"
    assert after != before, f"{chapter}: the explorer's output did not change with the slider"
    assert not recorder.problems(), "\n".join(recorder.problems())
