"""The ``llmcourse`` command line.

``llmcourse exercises`` regenerates ``exercises/`` from ``solutions/``;
``llmcourse exercises --check`` only reports stale exercise notebooks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse", description="Tools of the llmcourse book.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exercises", help="generate exercises/ from solutions/")
    ex.add_argument("--solutions", type=Path, default=Path("solutions"))
    ex.add_argument("--exercises", type=Path, default=Path("exercises"))
    ex.add_argument("--check", action="store_true", help="write nothing; exit 1 if any is stale")
    ex.set_defaults(run=_exercises)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"llmcourse {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
