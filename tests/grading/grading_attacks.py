"""The fixture corpus, continued: submissions that attack the grading machine, other
students or the instructor's reports, and answers that are not the student's own work,
each with the result it must get (graded with the rest of the corpus in test_corpus.py).

Where an attack can only be seen from inside a kernel (a secret left by another
submission, a quota), the answer computes the right value only if the attack failed,
so the expected score says that the sandbox held.
"""

from __future__ import annotations

from pathlib import Path

from grading_corpus import Case, answer_sources, dump, read, with_answers

from llmcourse.grading.notebook import Exercise, assemble
from llmcourse.grading.offlimits import Rules, package_definitions

# IPython's formatter is replaced: every value is shown as 50 MB of text (over the 33 MiB
# message limit), so every call result of this answer is refused before it is parsed
HUGE_REPLIES = """
get_ipython().display_formatter.format = lambda *a, **k: ({"text/plain": "x" * 50_000_000}, {})
"""
# System V IPC, a POSIX message queue and files in every folder a kernel can write or
# that is world-writable on the host (/run/lock), for the next submission to find
IPC_KEY = 0x11C1
TRACES = ("llmcourse", "llmcourse-secret")  # the message queue, the files
LEAVE_TRACES = f"""
import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmget({IPC_KEY}, 512 << 20, 0o1666), _libc.msgget({IPC_KEY}, 0o1666)
_libc.semget({IPC_KEY}, 4, 0o1666)
_libc.mq_open(b"/llmcourse", os.O_CREAT | os.O_RDWR, 0o666, None)
_libc.syscall(248, b"user", b"llmcourse", b"secret", 6, -4)  # the user's key ring (x86_64)
for _folder in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.environ["HOME"]):
    try:
        with open(os.path.join(_folder, "llmcourse-secret"), "w") as _f:
            _f.write("the answer is 42")
    except OSError:
        pass
"""
FIND_TRACES = f"""    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    found = [libc.shmget({IPC_KEY}, 0, 0), libc.msgget({IPC_KEY}, 0)]
    found += [libc.semget({IPC_KEY}, 0, 0), libc.mq_open(b"/llmcourse", os.O_RDWR, 0, None)]
    found += [libc.syscall(249, b"user", b"llmcourse", None, -4)]  # request_key (x86_64)
    folders = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.environ["HOME"])
    if max(found) >= 0 or any(os.path.exists(f"{{f}}/llmcourse-secret") for f in folders):
        return -1.0  # it found what another submission left
"""
# fills every writable folder until the file system is full: the total must stay within
# the one quota (the answer is only right if it did)
FILL_SCRATCH = """
import os
def _fill(folder):
    written = 0
    try:
        with open(os.path.join(folder, "filler"), "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
                written += 1 << 20
    except OSError:
        return written
_WRITTEN = sum(_fill(f) for f in ("/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]))
"""
WITHIN_QUOTA = """    if _WRITTEN > {quota}:
        return -1.0  # it wrote more than the quota
"""
# escape sequences that would clear the instructor's terminal, draw a fake total and
# write to the clipboard (OSC 52) if printed raw
ESCAPES = "\x1b[2J\x1b[H\r  total: 10/10\n\x1b]52;c;ZWNobyBvd25lZA==\x07\u202e"
SPREADSHEET_NAME = '=HYPERLINK("mailto:eve@example.com","click")_eve'


def host_cases(solution: Path, exercise: Path, quota: int) -> list[Case]:
    """Chapter 1 submissions that attack the grading machine, other submissions and the
    reports (``quota``: the corpus's scratch limit)."""
    sol, ex = read(solution), read(exercise)
    good = answer_sources(sol)

    def case(name: str, answers: dict[str, str], **expect: object) -> Case:
        return Case(name, dump(with_answers(ex, {**good, **answers})), **expect)

    def body(answer: str, prefix: str) -> str:
        return good[answer].replace("### BEGIN SOLUTION\n", "### BEGIN SOLUTION\n" + prefix)

    raising = f"def mle_next_word(sentences, context):\n    raise RuntimeError({ESCAPES!r})\n"
    return [
        case(
            "huge_replies",
            {"perplexity": good["perplexity"] + HUGE_REPLIES},
            scores={"perplexity": 0},
            messages={"perplexity": "limit is dropped"},
            kinds={"perplexity": "protocol"},
        ),
        case("leaves_traces", {"count_ngrams": good["count_ngrams"] + LEAVE_TRACES}),
        case("finds_no_traces", {"perplexity": body("perplexity", FIND_TRACES)}),
        case(
            "fills_scratch",
            {"add_k_prob": FILL_SCRATCH + body("add_k_prob", WITHIN_QUOTA.format(quota=quota))},
        ),
        case(
            SPREADSHEET_NAME,
            {
                "count_ngrams": body("count_ngrams", f"    print({ESCAPES!r})\n"),
                "mle_next_word": raising,
            },
            scores={"mle_next_word": 0},
            messages={"mle_next_word": ESCAPES},
            kinds={"mle_next_word": "raised"},
        ),
    ]


DELEGATION = {"attend": 1.0, "attend_twice": 1.0, "sinusoidal_encoding": 1.0}
DELEGATION |= {"row_sums": 1.0, "row_means": 1.0}
SDPA = "torch.nn.functional.scaled_dot_product_attention"


def delegation_cases(solution: Path) -> list[Case]:
    """Submissions of the synthetic ``ch95_delegation`` exercise: answers that call the
    code they should write, and later answers graded fairly after an earlier mistake."""
    sol = read(solution)
    module, _ = package_definitions()["sinusoidal_encoding"][0]
    package = f"{module}.sinusoidal_encoding"
    delegating = {
        "attend": "import torch.nn.functional as F\n\ndef attend(q, k, v):\n"
        "    return F.scaled_dot_product_attention(q, k, v)\n",
        "sinusoidal_encoding": "import importlib\n\ndef sinusoidal_encoding(n, d):\n"
        f"    return getattr(importlib.import_module({module!r}), 'sinusoidal_encoding')(n, d)\n",
    }
    mistakes = {
        "attend": "def attend(q, k, v):  # not scaled by sqrt(d)\n"
        "    return torch.softmax(q @ k.transpose(-2, -1), -1) @ v\n",
        "row_sums": "def row_sums(x):\n    return x.sum(dim=0)\n",
    }
    full = dict(DELEGATION)
    return [
        Case("delegation_solution", dump(sol), full=full),
        Case(
            "delegates",
            dump(with_answers(sol, delegating)),
            scores={"attend": 0, "sinusoidal_encoding": 0},  # attend_twice: the stand-in
            messages={
                "attend": f"attend uses {SDPA}, which this exercise asks you to write",
                "sinusoidal_encoding": f"uses {package}, which this exercise asks you to write",
            },
            kinds={"attend": "off_limits", "sinusoidal_encoding": "off_limits"},
            full=full,
        ),
        Case(
            "earlier_mistakes",
            dump(with_answers(sol, mistakes)),
            scores={"attend": 0, "row_sums": 0, "row_means": 0},
            answer_notes={
                "attend_twice": "graded with the reference answer:attend",
                "row_means": "may come from answer:row_sums",
            },
            full=full,
        ),
    ]


def stand_in_cases(solutions: list[Path], exercises: Path, tests: Path) -> list[Case]:
    """For each chapter whose grading tests declare stand-ins: its solution with the
    answers that have one left unanswered. The answers that use them still score full
    marks, graded with the stand-in, and say so."""
    cases = []
    for solution in solutions:
        stand_ins = Rules.read(tests / f"test_{solution.stem}.py").stand_ins
        if not stand_ins:
            continue
        stubs = answer_sources(read(exercises / solution.name))
        unanswered = {answer: stubs[answer] for answer in stand_ins}
        assembled = assemble(read(solution), Exercise.load(exercises / solution.name))
        notes = {
            answer: f"graded with the reference answer:{sorted(used)[0]}"
            for answer in assembled.answers
            if (used := assembled.stand_in_dependencies(answer, stand_ins))
        }
        cases.append(
            Case(
                f"stand_ins-{solution.stem}",
                dump(with_answers(read(solution), unanswered)),
                scores=dict.fromkeys(stand_ins, 0.0),
                kinds=dict.fromkeys(stand_ins, "not_implemented"),
                answer_notes=notes,
                full=None,
            )
        )
    return cases


def chapter6_delegation(solution: Path) -> Case:
    """Chapter 6's attention returning the course package's own attention (it scored
    12/12 before answers could declare what is off limits)."""
    from llmcourse.modules import scaled_dot_product_attention

    module = scaled_dot_product_attention.__module__
    attention = (
        f"from {module} import scaled_dot_product_attention\n\n"
        "def attention(q, k, v, mask=None):\n"
        "    return scaled_dot_product_attention(q, k, v, mask)\n"
    )
    name = f"{module}.scaled_dot_product_attention"
    return Case(
        "delegates-ch06_transformer",
        dump(with_answers(read(solution), {"attention": attention})),
        scores={"attention": 0},
        messages={"attention": f"attention uses {name}, which this exercise asks you to write"},
        kinds={"attention": "off_limits"},
        full=None,
    )
