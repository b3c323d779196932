"""The ``llmcourse`` command line.

``llmcourse exercises`` regenerates ``exercises/`` from ``solutions/``;
``llmcourse exercises --check`` only reports stale exercise notebooks.
``llmcourse grade SUBMISSIONS...`` grades notebooks (files or folders) into a gradebook;
``llmcourse grade --gradescope-package chNN_name OUT.zip`` builds a Gradescope autograder;
``llmcourse check NOTEBOOK`` is the student's self-check (visible tests only).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmcourse import exercises


def _exercises(args: argparse.Namespace) -> int:
    changed = exercises.generate(args.solutions, args.exercises, check=args.check)
    if args.check:
        for path in changed:
            print(f"stale: {path} (run `llmcourse exercises` to regenerate it)")
        return 1 if changed else 0
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("exercises are up to date")
    return 0


def _grading_options(args: argparse.Namespace, visible_only: bool = False) -> Any:
    from llmcourse.grading.grade import Course, Options
    from llmcourse.grading.limits import Limits

    default = Course.default()
    course = Course(args.exercises or default.exercises, args.tests or default.tests)
    limits = Limits()
    overrides = {
        "cell_timeout": args.cell_timeout,
        "call_timeout": args.call_timeout,
        "submission_timeout": args.submission_timeout,
        "memory": args.memory and args.memory << 20,
    }
    limits = replace(limits, **{k: v for k, v in overrides.items() if v})
    return Options(course, limits, args.exercise, visible_only)


def _grade(args: argparse.Namespace) -> int:
    from llmcourse.grading import report
    from llmcourse.grading.batch import grade_batch, submissions_in
    from llmcourse.grading.gradescope import build_package

    if args.gradescope_package:
        name, target = args.gradescope_package
        files = build_package(name, Path(target), _grading_options(args).course)
        print(f"wrote {target} ({len(files)} files): upload it as the autograder of {name}")
        return 0
    if not args.submissions:
        raise ValueError("name submission notebooks or folders (or use --gradescope-package)")
    paths = submissions_in(args.submissions)
    if not paths:
        raise FileNotFoundError(f"no notebooks in {', '.join(map(str, args.submissions))}")
    results = grade_batch(
        paths, args.out, _grading_options(args), args.workers, args.force, not args.quiet
    )
    for result in results:
        print(report.text(result))
    out = report.safe_text(args.out)
    print(f"wrote {out}/gradebook.csv, logs/ and gradescope/ in {out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from llmcourse.grading import report
    from llmcourse.grading.batch import limit_memory
    from llmcourse.grading.grade import grade_file

    if not args.notebook.is_file():
        raise FileNotFoundError(f"no such notebook: {args.notebook}")
    options = _grading_options(args, visible_only=True)
    limit_memory(options.limits.grader_memory)
    result = grade_file(args.notebook, options)
    hidden = result.get("tests_not_run", 0)
    extra = f"; the grade also runs {hidden} hidden test{'s' * (hidden != 1)}" if hidden else ""
    print(f"Self-check of {report.safe_text(args.notebook.name)} (visible tests{extra})")
    print(report.text(result, student_view=True))
    passed = result["status"] == "graded" and all(
        a["status"] == "passed" for a in result["answers"]
    )
    print(
        "All visible tests pass." if passed else "Fix what is listed above, save, and check again."
    )
    return 0 if passed else 1


def _add_grading_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exercise", help="grade as this exercise (default: match each file)")
    parser.add_argument("--exercises", type=Path, help="folder of exercise or solution notebooks")
    parser.add_argument("--tests", type=Path, help="folder of the grading tests (test_<name>.py)")
    parser.add_argument("--cell-timeout", type=float, help="seconds per cell")
    parser.add_argument("--call-timeout", type=float, help="seconds per call of a function")
    parser.add_argument("--submission-timeout", type=float, help="seconds per submission")
    parser.add_argument("--memory", type=int, help="MiB of address space per kernel")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse", description="Tools of the llmcourse book.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exercises", help="generate exercises/ from solutions/")
    ex.add_argument("--solutions", type=Path, default=Path("solutions"))
    ex.add_argument("--exercises", type=Path, default=Path("exercises"))
    ex.add_argument("--check", action="store_true", help="write nothing; exit 1 if any is stale")
    ex.set_defaults(run=_exercises)
    grade = sub.add_parser("grade", help="grade submissions (notebooks or folders of them)")
    grade.add_argument("submissions", nargs="*", type=Path)
    grade.add_argument("--out", type=Path, default=Path("grading-output"), help="results folder")
    grade.add_argument("--workers", type=int, default=1, help="submissions graded in parallel")
    grade.add_argument("--force", action="store_true", help="grade again what is already graded")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.add_argument(
        "--gradescope-package",
        nargs=2,
        metavar=("EXERCISE", "ZIP"),
        help="write a Gradescope autograder for EXERCISE to ZIP instead of grading",
    )
    _add_grading_arguments(grade)
    grade.set_defaults(run=_grade)
    check = sub.add_parser("check", help="self-check a saved exercise notebook (visible tests)")
    check.add_argument("notebook", type=Path)
    _add_grading_arguments(check)
    check.set_defaults(run=_check)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as err:
        from llmcourse.grading.report import safe_text

        print(f"llmcourse {args.command}: {safe_text(err, lines=True)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
