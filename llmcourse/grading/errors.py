"""How a call into student code fails, as seen by a grading test.

Every failure is a :class:`StudentError` with a ``kind`` (below) and a one-line
``summary`` for feedback. An exception the student's function raised is re-raised as
a class that is both a :class:`StudentError` and the matching built-in exception, so
``pytest.raises(ValueError)`` accepts a student's ``ValueError`` (or a subclass of
it) and nothing else. A call that reached code the answer must write itself (see
:mod:`llmcourse.grading.offlimits`) fails as ``off_limits``: "attention uses
torch.nn.functional.scaled_dot_product_attention, which this exercise asks you to
write".
"""

from __future__ import annotations

import builtins
from functools import cache

KINDS = {
    "raised": "raised an exception",
    "off_limits": "uses a function this exercise asks you to write",
    "not_implemented": "not implemented yet",
    "memory": "ran out of memory",
    "undefined": "function not defined",
    "not_plain": "returned something that is not plain data",
    "timeout": "timed out",
    "died": "crashed the kernel",
    "protocol": "the call could not complete",
    "time_budget": "the submission ran out of time",
    "missing_answer": "answer missing",
    "answer_failed": "the answer cell failed",
    "setup_failed": "the exercise's setup failed (grader problem)",
}
OFF_LIMITS = "OffLimitsError"  # see llmcourse.grading.blocking
RERAISED = (
    "NotImplementedError", "RecursionError", "ZeroDivisionError", "OverflowError",
    "FloatingPointError", "ArithmeticError", "UnboundLocalError", "NameError", "KeyError",
    "IndexError", "LookupError", "UnicodeError", "ValueError", "TypeError", "AttributeError",
    "AssertionError", "MemoryError", "StopIteration", "RuntimeError",
)  # fmt: skip


class StudentError(Exception):
    """A call into the student's code that did not return a value.

    Attributes:
        kind: one of :data:`KINDS`.
        summary: one line for feedback, e.g. ``perplexity raised ValueError: empty``.
        type_name: for ``raised``: the class name of the student's exception.
        student_traceback: for ``raised``: the traceback inside the student's code.
    """

    def __init__(
        self,
        message: str,
        kind: str,
        summary: str = "",
        type_name: str = "",
        student_traceback: str = "",
    ) -> None:
        super().__init__(message)
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.kind = kind
        self.summary = summary or message
        self.type_name = type_name
        self.student_traceback = student_traceback


@cache
def _reraise_class(builtin_name: str) -> type[StudentError]:
    base = getattr(builtins, builtin_name)
    return type(f"Student{builtin_name}", (StudentError, base), {"__module__": __name__})


def raised(
    function: str, type_name: str, bases: list[str], message: str, student_traceback: str
) -> StudentError:
    """The error for an exception the student's ``function`` raised.

    Args:
        function: the name of the function called.
        type_name: the exception's class name.
        bases: the built-in exception classes it derives from, nearest first.
        message: ``str()`` of the exception.
        student_traceback: the traceback inside the student's code.
    """
    builtin = next((b for b in bases if b in RERAISED), None)
    kind = "raised"
    summary = f"{function} raised {type_name}" + (f": {message}" if message else "")
    if builtin == "NotImplementedError":
        kind = "not_implemented"
    elif builtin == "MemoryError" or "can't allocate memory" in message:
        kind = "memory"
    elif type_name == OFF_LIMITS:  # never accepted as the exception a test expects
        kind, summary, builtin = "off_limits", f"{function} {message}", None
    cls = _reraise_class(builtin) if builtin else StudentError
    return cls(message, kind, summary, type_name, student_traceback)
