"""One submission under test: a fresh kernel per answer, and ``student.call`` into it.

Isolation between answers: each answer id gets its own kernel (forked by the
exercise's fork server, see :mod:`llmcourse.grading.spawner`), which runs the
exercise's setup cells, the answer's cell and the other answer cells it uses (its
plan, see :meth:`Assembled.plan`, with the stand-ins of the answers it uses), and
then serves the calls of that answer's tests only. So a global that one answer (or a
call to it) changes cannot move another answer's score, while an answer that builds on
an earlier one (``mle_next_word`` calling ``count_ngrams``) works as in the notebook.
If a call times out or kills the kernel, the next call gets a new kernel that replays
the plan. An answer cell that
fails (raises, times out, kills the kernel) scores 0 for its answer; when another
answer uses it, it is still run there (the student's notebook would run it too),
except when it hung or crashed: then it is skipped, with a note.

Every call seeds ``random``, and ``numpy`` and ``torch`` if the kernel imported them,
with the same seed (0), so a student's randomized function is reproducible.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmcourse.grading import channel, errors
from llmcourse.grading.errors import StudentError
from llmcourse.grading.kernel import Kernel, KernelError, OutputBudget
from llmcourse.grading.limits import Limits
from llmcourse.grading.notebook import Assembled, Step
from llmcourse.grading.spawner import ForkServer

SEED = 0
CELL_FILE = re.compile(r"\(\S+\.py, line (\d+)\)")
CELL_FILE_LINE = re.compile(r"\(line \d+\)$")
CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")  # the executed cell's frame


@dataclass
class AnswerLog:
    """What happened to one answer's cells and kernels, for the report.

    Attributes:
        failure: why the answer's own cell failed (it then scores 0), or "".
        failure_kind: the :data:`errors.KINDS` entry for it.
        notes: other remarks (a dependency that failed, kernel restarts).
        restarts: how many times a call that timed out or crashed cost its kernel.
        output: the first output its cells and calls printed (capped).
    """

    failure: str = ""
    failure_kind: str = ""
    notes: list[str] = field(default_factory=list)
    restarts: int = 0
    output: str = ""


class GradingSession:
    """The kernels of one submission. Use as a context manager.

    Args:
        assembled: the submission's answers in their exercise.
        limits: time, memory and output limits.
        server: the exercise's fork server.
        stand_ins: answer id -> the code that stands in for it in later answers.
    """

    def __init__(
        self,
        assembled: Assembled,
        limits: Limits,
        server: ForkServer,
        stand_ins: dict[str, str] | None = None,
    ) -> None:
        self.assembled, self.limits, self.server = assembled, limits, server
        self.stand_ins = stand_ins or {}
        self.deadline = time.monotonic() + limits.submission_timeout
        self.outputs = OutputBudget(limits.output_per_cell, limits.output_per_submission)
        self.logs = {ident: AnswerLog() for ident in assembled.exercise.answers}
        self.fatal: dict[str, str] = {}  # answer cells that hung or crashed a kernel
        self._kernel: Kernel | None = None
        self._kernel_answer = ""
        self._spare: tuple[str, Kernel] | None = None  # launched early for the next answer

    def student(self, answer: str) -> Student:
        """The student as seen by the tests of ``answer``."""
        if answer not in self.logs:
            raise KeyError(f"{self.assembled.exercise.name} has no answer {answer!r}")
        return Student(lambda name, args, kwargs: self._call(answer, name, args, kwargs))

    def close(self) -> None:
        """Kill the kernels."""
        self._close_current()
        if self._spare is not None:
            self._spare[1].close()
            self._spare = None

    def _close_current(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None

    def __enter__(self) -> GradingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remaining(self) -> float:
        """Seconds left on the submission's wall clock."""
        return self.deadline - time.monotonic()

    # -- kernels ------------------------------------------------------------------------
    def _check(self, answer: str) -> None:
        """Raise the answer-level failure, if any, before touching a kernel."""
        if answer in self.assembled.problems:
            raise StudentError(self.assembled.problems[answer], "missing_answer")
        if answer in self.assembled.unchanged:
            message = f"answer:{answer} is unchanged: it still raises NotImplementedError"
            raise StudentError(message, "not_implemented")
        log = self.logs[answer]
        if log.failure:
            raise StudentError(log.failure, log.failure_kind)
        if self.remaining() <= 0:
            message = f"the submission used up its {self.limits.submission_timeout:g} s"
            raise StudentError(message, "time_budget")

    def _kernel_for(self, answer: str) -> Kernel:
        """The live kernel of ``answer``, started and set up if needed."""
        if self._kernel is not None and self._kernel_answer == answer and self._kernel.alive:
            return self._kernel
        log = self.logs[answer]
        if self._kernel_answer == answer:
            log.restarts += 1
        while True:  # each round that a dependency hangs or crashes skips it from then on
            self._close_current()
            try:
                self._kernel, self._kernel_answer = self._launch(answer), answer
                self._kernel.wait_until_ready(self.deadline)
            except KernelError as err:
                message = f"the grading kernel did not start: {err}"
                raise StudentError(message, "setup_failed") from None
            plan = self.assembled.plan(answer, set(self.fatal), self.stand_ins)
            if all(self._run_step(answer, step) for step in plan):
                break
        for other in sorted(set(self.fatal) & self.assembled.dependencies(answer) - {answer}):
            note = f"answer:{other}, which this answer uses, was skipped: {self.fatal[other]}"
            log.notes.append(note)
        self._prefetch(answer)
        return self._kernel

    def _launch(self, answer: str) -> Kernel:
        """A launched kernel for ``answer``: the spare one if it was launched for it."""
        if self._spare is not None:
            spare_answer, kernel = self._spare
            self._spare = None
            if spare_answer == answer:
                return kernel
            kernel.close()
        kernel = Kernel(self.server, answer, self.limits, self.outputs, self._free_slot())
        kernel.launch(self.deadline)
        return kernel

    def _free_slot(self) -> int:
        """The user slot no live kernel of this session holds."""
        held = {k.slot for k in (self._kernel, self._spare[1] if self._spare else None) if k}
        return min({0, 1} - held)

    def _prefetch(self, answer: str) -> None:
        """Launch the kernel of the answer after ``answer`` while ``answer``'s tests run
        (the tests run answer by answer, in notebook order)."""
        order = list(self.assembled.exercise.answers)
        skip = set(self.assembled.problems) | self.assembled.unchanged
        later = [a for a in order[order.index(answer) + 1 :] if a not in skip]
        if later and self._spare is None:
            kernel = Kernel(self.server, later[0], self.limits, self.outputs, self._free_slot())
            try:
                kernel.launch(self.deadline)
            except KernelError:
                kernel.close()
                return
            self._spare = (later[0], kernel)

    def _run_step(self, answer: str, step: Step) -> bool:
        """Run one cell of ``answer``'s plan; False if the kernel must be started over.

        Raises:
            StudentError: the answer cannot be graded (its cell or the setup failed).
        """
        self._check(answer)
        assert self._kernel is not None
        run = self._kernel.execute(step.source, min(self.limits.cell_timeout, self.remaining()))
        log = self.logs[answer]
        log.output += run.output[: max(0, 2000 - len(log.output))]
        if run.status == "ok":
            return True
        where = f"{step.label}: {_with_line(run.summary(), run.traceback)}"
        if step.answer is None:
            owner = "" if step.stand_in else "the exercise's "
            log.failure, log.failure_kind = f"{owner}{where}", "setup_failed"
        elif step.answer == answer:
            kind = "memory" if run.out_of_memory else _cell_kind(run.status)
            log.failure, log.failure_kind = f"the answer cell failed, {where}", kind
        else:
            log.notes.append(f"answer:{step.answer}, which this answer uses, failed: {where}")
        hung = run.status in ("timeout", "died")
        if hung and step.answer is not None:
            self.fatal[step.answer] = run.summary()
        self._check(answer)
        return not hung  # a dependency hung or crashed the kernel: start over without it

    # -- calls --------------------------------------------------------------------------
    def _call(self, answer: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._check(answer)
        kernel = self._kernel_for(answer)
        expression = channel.call_expression(
            channel.call_request(name, args, kwargs, SEED), self.limits.result_size
        )
        timeout = max(0.0, min(self.limits.call_timeout, self.remaining()))
        run = kernel.execute("", timeout, user_expressions={"result": expression})
        if run.status in ("timeout", "died", "protocol"):
            kernel.kill(run.detail)
            kind = "memory" if run.out_of_memory else run.status
            raise StudentError(f"{name}() {run.summary()}", kind)
        result = (run.reply.get("user_expressions") or {}).get("result")
        return _answer(name, lambda: channel.check_response(_result_data(name, result)))


def _cell_kind(status: str) -> str:
    return {"timeout": "timeout", "died": "died"}.get(status, "answer_failed")


def _with_line(summary: str, traceback: str) -> str:
    """The summary plus the line of the cell the error points at, when the traceback says."""
    summary = CELL_FILE.sub(r"(line \1)", summary)  # IPython names cells like 1570505846.py
    line = CELL_LINE.search(traceback)
    if line and not CELL_FILE_LINE.search(summary):
        return f"{summary} (line {line.group(1)})"
    return summary


def _result_data(name: str, result: Any) -> Any:
    """The call's response in a user expression's result (all of it untrusted): the
    ``application/json`` data IPython made of it, already parsed with bounds."""
    if not isinstance(result, dict):
        raise StudentError(f"{name}(): the kernel sent no result", "protocol")
    if result.get("status") != "ok":
        what = f"{result.get('ename', '')}: {result.get('evalue', '')}"
        raise StudentError(f"{name}(): the call could not run in the kernel ({what})", "protocol")
    data = result.get("data")
    if not isinstance(data, dict) or "application/json" not in data:
        raise StudentError(f"{name}(): the kernel sent a malformed result", "protocol")
    return data["application/json"]


def respond(name: str, text: str) -> Any:
    """The value in a call's JSON response text, or the matching :class:`StudentError`."""
    return _answer(name, lambda: channel.parse_response(text))


def _answer(name: str, parse: Callable[[], tuple[str, Any]]) -> Any:
    try:
        status, body = parse()
    except channel.ProtocolError as err:
        raise StudentError(
            f"{name}(): the kernel sent malformed data ({err})", "protocol"
        ) from None
    if status == "ok":
        return body
    if body["kind"] == "raised":
        raise errors.raised(name, body["type"], body["bases"], body["message"], body["traceback"])
    kind = body["kind"] if body["kind"] in ("undefined", "not_plain") else "protocol"
    raise StudentError(body["message"], kind)


class Student:
    """What a grading test sees: ``student.call("name", *args, **kwargs)``."""

    def __init__(self, call: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]) -> None:
        self._call = call

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the student's function ``name`` with plain data; returns plain data.

        Raises:
            StudentError: the function raised (then also the matching built-in class,
                e.g. ``ValueError``), is not defined, returned something that is not
                plain data, timed out or crashed, or its answer cannot be graded.
        """
        return self._call(name, args, kwargs)


def in_process_student(
    namespace: dict[str, Any], result_limit: int = Limits().result_size
) -> Student:
    """A :class:`Student` calling functions of ``namespace`` in this process, through the
    same encoding as a kernel (for testing grading tests against reference solutions)."""

    def call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = channel.call_request(name, args, kwargs, SEED)
        return respond(name, channel.kernel_call(namespace, request, result_limit))

    return Student(call)
