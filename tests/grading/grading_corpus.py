"""The fixture corpus: faulty and adversarial submissions, made at test time from the
exercise notebooks by small transforms, each with the result it must get.

Chapter 1's points per answer: count_ngrams 2, mle_next_word 3, add_k_prob 3,
perplexity 2 (10 in all).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# prints a fake score and tries to leave results where the grader's would be
FORGE = """
import json, pathlib
print("Score: 10/10 (100%)")
pathlib.Path("results.json").write_text(json.dumps({{"score": 100}}))
for folder in {folders!r}:
    try:
        pathlib.Path(folder, "results.json").write_text('{{"score": 100}}')
    except OSError:
        pass
"""
# warnings, stderr and a progress bar from a correct answer cost nothing
NOISE = """    import sys, warnings
    from tqdm.auto import tqdm
    warnings.warn("this can be slow", UserWarning)
    print("working", file=sys.stderr)
    for _ in tqdm(range(3), desc="working"):
        pass
"""
LOOP_IGNORING_INTERRUPTS = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    time.sleep(1)
"""
# Reserves address space until the kernel's limit (RLIMIT_AS) refuses it. The pages are
# never touched: a bomb that writes its memory measures how fast the machine can fault
# pages in (about 0.4 GB/s on a busy CI virtual machine, so 4 GiB can outlast the 10 s
# answer timeout) instead of the memory limit this case is about.
MEMORY_BOMB = """
import mmap
hog = [mmap.mmap(-1, 2**27) for _ in range(10**4)]
"""

HUGE_OUTPUT = """
import sys
for i in range(20_000):
    print("line", i)
sys.stdout.flush()
print("x" * 10**8)
"""
ALWAYS_EQUAL = """class AlwaysEqual:
    def __eq__(self, other):
        return True

"""
EVIL_COUNTER = """class EvilCounter(dict):
    def __eq__(self, other):
        return True

    __hash__ = None


def count_ngrams(sentences, n):
    if n < 1:
        raise ValueError(n)
    return EvilCounter()
"""
MONKEYPATCH = """import math
import numpy, numpy.testing, pytest, torch, torch.testing
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
math.isclose = lambda *a, **k: True
pytest.approx = lambda *a, **k: 1.0
"""
# a correct perplexity only if the kernel cannot see any of SECRETS, and git cannot show
# the hidden tests from the repository's .git
PEEK = """    import subprocess
    for secret in SECRETS:
        if os.path.exists(secret):
            return -1.0  # it could see a file it must not
    path = "HEAD:tests/exercises/test_ch01_ngrams.py"
    if subprocess.run(["git", "-C", REPOSITORY, "show", path], capture_output=True).returncode == 0:
        return -1.0  # it could read the tests through git
"""
CH01 = {"count_ngrams": 2.0, "mle_next_word": 3.0, "add_k_prob": 3.0, "perplexity": 2.0}


@dataclass
class Case:
    """One submission and what grading it must give.

    Attributes:
        name: the file's stem (the student).
        content: the file's bytes.
        status: the result's status.
        scores: answer id -> exact score (answers not named score full marks).
        messages: answer id -> a text the answer's message, or else one of its failed
            tests' messages, must contain.
        kinds: answer id -> the failure kind of every failed test of that answer.
        notes: texts the result's notes must contain.
        answer_notes: answer id -> a text one of the answer's notes must contain.
        message: for an invalid submission, a text its reason must contain.
        full: the full marks per answer (None: each answer's maximum in the result).
    """

    name: str
    content: bytes
    status: str = "graded"
    scores: dict[str, float] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    answer_notes: dict[str, str] = field(default_factory=dict)
    message: str = ""
    full: dict[str, float] | None = field(default_factory=lambda: dict(CH01))

    def expected_scores(self, result: dict[str, Any]) -> dict[str, float]:
        full = self.full or {a["id"]: a["max_score"] for a in result["answers"]}
        return {answer: self.scores.get(answer, points) for answer, points in full.items()}


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(notebook: dict[str, Any]) -> bytes:
    return json.dumps(notebook, indent=1).encode()


def answer_sources(notebook: dict[str, Any]) -> dict[str, str]:
    """answer id -> source of the notebook's answer cells."""
    sources = {}
    for cell in notebook["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("answer:"):
                source = cell["source"]
                sources[tag[7:]] = "".join(source) if isinstance(source, list) else source
    return sources


def with_answers(exercise: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """A copy of ``exercise`` whose answer cells hold ``answers`` (the others untouched)."""
    notebook = copy.deepcopy(exercise)
    for cell in notebook["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("answer:") and tag[7:] in answers:
                cell["source"] = answers[tag[7:]]
    return notebook


def cell_index(notebook: dict[str, Any], answer: str) -> int:
    return next(
        i
        for i, c in enumerate(notebook["cells"])
        if f"answer:{answer}" in c.get("metadata", {}).get("tags", [])
    )


def ch01_cases(solution: Path, exercise: Path, secrets: dict[str, Path]) -> list[Case]:
    """Chapter 1 submissions, from its solution and exercise notebooks.

    Each submission breaks several answers in different ways; since every answer is
    graded in its own kernel, each must get exactly its own result.

    Args:
        solution: the solution notebook.
        exercise: the (untouched) exercise notebook.
        secrets: paths a submission must not be able to see: ``tests``, ``solution``,
            ``submission`` (another student's), ``out`` (the results), ``git`` (the
            repository's ``.git``) and more.
    """
    sol, ex = read(solution), read(exercise)
    good, stubs = answer_sources(sol), answer_sources(ex)

    def case(name: str, answers: dict[str, str], **expect: Any) -> Case:
        return Case(name, dump(with_answers(ex, {**good, **answers})), **expect)

    def body(answer: str, prefix: str) -> str:
        """The good answer with ``prefix`` run first when it is called."""
        return good[answer].replace("### BEGIN SOLUTION\n", "### BEGIN SOLUTION\n" + prefix)

    add_k = good["add_k_prob"].splitlines()
    broken = next(i for i, line in enumerate(add_k) if line.strip() == "if not k > 0:")
    add_k[broken] = add_k[broken].rstrip(":")
    cases = [
        case(
            "crashes",
            {
                "mle_next_word": good["mle_next_word"] + LOOP_IGNORING_INTERRUPTS,
                "add_k_prob": body("add_k_prob", "    import ctypes\n    ctypes.string_at(0)\n"),
                "perplexity": good["perplexity"] + "\nimport os\nos._exit(1)\n",
            },
            scores={"mle_next_word": 0, "add_k_prob": 0, "perplexity": 0},
            messages={
                "mle_next_word": "timed out after 10 s (ignored the interrupt, killed)",
                "add_k_prob": "add_k_prob() the kernel died (killed by SIGSEGV)",
                "perplexity": "the kernel died (exit status 1)",
            },
            kinds={"mle_next_word": "timeout", "add_k_prob": "died", "perplexity": "died"},
        ),
        case(
            "errors",
            {
                "mle_next_word": good["mle_next_word"] + MEMORY_BOMB,
                "add_k_prob": "\n".join(add_k),
                "perplexity": "import llmcourse_no_such_package\n" + good["perplexity"],
            },
            scores={"mle_next_word": 0, "add_k_prob": 0, "perplexity": 0},
            messages={
                "mle_next_word": "memory limit reached",
                "add_k_prob": f"SyntaxError: expected ':' (line {broken + 1})",
                "perplexity": "ModuleNotFoundError: No module named 'llmcourse_no_such_package'",
            },
            kinds={"mle_next_word": "memory", "add_k_prob": "answer_failed"},
        ),
        case(
            "loops_and_output",
            {
                "count_ngrams": good["count_ngrams"] + HUGE_OUTPUT,
                "perplexity": "def perplexity(token_probs):\n    while True:\n        pass\n",
            },
            scores={"perplexity": 0},
            messages={"perplexity": "perplexity() timed out after 3 s"},
            kinds={"perplexity": "timeout"},
        ),
        case(
            "tampering",
            {
                "count_ngrams": EVIL_COUNTER,
                "mle_next_word": ALWAYS_EQUAL
                + "def mle_next_word(sentences, context):\n    return AlwaysEqual()\n",
                "add_k_prob": "def add_k_prob(counts, context, word, vocab_size, k):\n"
                "    return float('nan')\n",
                "perplexity": MONKEYPATCH + "def perplexity(token_probs):\n    return 1.0\n",
            },
            scores={"count_ngrams": 0.5, "mle_next_word": 0, "add_k_prob": 0, "perplexity": 0},
            messages={
                "mle_next_word": "returned an object of type __main__.AlwaysEqual",
                "add_k_prob": "got nan",
            },
            kinds={"count_ngrams": "wrong", "mle_next_word": "not_plain", "perplexity": "wrong"},
        ),
        case(
            "forgery",
            {
                "count_ngrams": good["count_ngrams"]
                + FORGE.format(folders=[str(secrets["submission"].parent), str(secrets["out"])]),
                "mle_next_word": body("mle_next_word", NOISE),
                "add_k_prob": stubs["add_k_prob"],
                "perplexity": f"import os\nSECRETS = {[str(p) for p in secrets.values()]!r}\n"
                f"REPOSITORY = {str(secrets['git'].parent)!r}\n" + body("perplexity", PEEK),
            },
            scores={"add_k_prob": 0},
            kinds={"add_k_prob": "not_implemented"},
        ),
    ]
    # cell-level edits: a duplicated, a deleted, a retyped answer; reordered cells; an
    # edited setup cell and an extra cell
    edited = with_answers(ex, good)
    index = cell_index(edited, "count_ngrams")
    stub = copy.deepcopy(ex["cells"][cell_index(ex, "count_ngrams")])
    edited["cells"].insert(index + 1, stub)  # before the good one once the cells are reversed
    del edited["cells"][cell_index(edited, "perplexity")]
    retyped = edited["cells"][cell_index(edited, "add_k_prob")]
    retyped["cell_type"] = "markdown"
    retyped.pop("outputs"), retyped.pop("execution_count")
    edited["cells"][1]["source"] = 'BOS, EOS = "[", "]"\nimport math\nmath.log = lambda x: 0.0\n'
    extra = {"cell_type": "code", "metadata": {}, "source": "raise SystemExit(1)"}
    edited["cells"].insert(0, {**extra, "outputs": [], "execution_count": None})
    edited["cells"].reverse()
    cases.append(
        Case(
            "edited_cells",
            dump(edited),
            scores={"add_k_prob": 0, "perplexity": 0},
            messages={
                "add_k_prob": "answer:add_k_prob is a markdown cell, not code",
                "perplexity": "no cell tagged answer:perplexity",
            },
            kinds={"add_k_prob": "missing_answer", "perplexity": "missing_answer"},
            notes=["2 cells are tagged answer:count_ngrams; the last one"],
        )
    )
    return cases


def tensor_cases(solution: Path) -> list[Case]:
    """Submissions of the synthetic tensor exercise (``ch99_tensors``)."""
    sol = read(solution)
    full = {"normalize_rows": 1.0, "causal_mask": 1.0, "log_softmax": 1.0}
    normalized = "(x / x.sum(dim=-1, keepdim=True))"
    wrong_kinds = {
        "normalize_rows": f"def normalize_rows(x):\n    return {normalized}.double()\n",
        "causal_mask": "def causal_mask(n):\n"
        "    return torch.tril(torch.ones(n, n, dtype=torch.bool))[None]\n",
        "log_softmax": "def log_softmax(x):\n"
        "    return np.log(np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True))\n",
    }
    not_tensors = {
        "normalize_rows": f"def normalize_rows(x):\n    return {normalized}.tolist()\n",
        "causal_mask": ALWAYS_EQUAL + "def causal_mask(n):\n    return AlwaysEqual()\n",
    }
    return [
        Case("tensors_solution", dump(sol), full=full),
        Case(
            "tensors_wrong_kinds",
            dump(with_answers(sol, wrong_kinds)),
            scores=dict.fromkeys(full, 0.0),
            messages={
                "normalize_rows": "to be Tensor[3, 4] float32, got Tensor[3, 4] float64",
                "causal_mask": "causal_mask(1) to be Tensor[1, 1] bool, got Tensor[1, 1, 1] bool",
                "log_softmax": "NaN or infinite values",
            },
            full=full,
        ),
        Case(
            "tensors_not_tensors",
            dump(with_answers(sol, not_tensors)),
            scores={"normalize_rows": 0, "causal_mask": 0},
            messages={
                "normalize_rows": "expected the result to be Tensor[3, 4] float32, got list of 3",
                "causal_mask": "returned an object of type __main__.AlwaysEqual",
            },
            full=full,
        ),
    ]


def malformed_cases(solution: Path, huge: Path) -> list[Case]:
    """Files that are not gradable notebooks (``huge`` is written by the caller)."""
    r_kernel = read(solution)
    r_kernel["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    r_kernel["metadata"]["language_info"] = {"name": "R"}
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}
    invalid = {"status": "invalid", "scores": dict.fromkeys(CH01, 0.0)}
    return [
        Case("not_json", b"{this is not json", message="invalid JSON", **invalid),
        Case("ch01_ngrams-empty", b"", message="the file is empty", **invalid),
        Case("nbformat3", json.dumps(v3).encode(), message="format version 3", **invalid),
        Case("r_kernel", dump(r_kernel), message="kernel 'ir' (R)", **invalid),
        Case(huge.stem, b"", message="the file is 200 MiB, over the 20 MiB limit", **invalid),
    ]
