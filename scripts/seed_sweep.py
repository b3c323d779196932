"""Run every grading test that draws a ``fresh_seed`` against the reference solution for
thousands of seeds, and report every seed on which a correct answer fails.

Usage (one-off, not part of ``make test``; one core, one torch thread)::

    taskset -c 1 .venv/bin/python scripts/seed_sweep.py [--seeds 3000] [--first 0]
        [--chapters ch06_transformer ch08_decoding] [-k beam]

The tests run in this process through ``tests/exercises/conftest.py``'s in-process
student (the solution notebook executed once per chapter, every call through the
grader's plain-data channel), exactly as ``make test`` runs them, but each test that
takes ``fresh_seed`` runs once per seed ``first, first + 1, ...`` instead of once with a
random seed. A grading test must accept a correct answer for every seed: any failure
printed here is a bug of the test (or of the reference), to fix before it fails a
student's correct work. Exit status 1 if any test failed for any seed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from _pytest.runner import runtestprotocol

from llmcourse.grading.runner import SEEDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 3  # failing seeds shown per test


class SeedSweep:
    """A pytest plugin: each test that uses ``fresh_seed`` runs once per seed."""

    def __init__(self, seeds: range) -> None:
        self.seeds = seeds
        self.seed = seeds.start
        self.runs: dict[str, int] = defaultdict(int)
        self.failures: dict[str, list[tuple[int, str]]] = defaultdict(list)

    @pytest.hookimpl
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[SEEDS] = lambda: self.seed

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        seeds = self.seeds if "fresh_seed" in getattr(item, "fixturenames", ()) else [None]
        for seed in seeds:
            self.seed = seed if seed is not None else self.seeds.start
            last = seed == seeds[-1]  # until then, keep the module's fixtures (the notebook)
            reports = runtestprotocol(item, log=False, nextitem=nextitem if last else item.parent)
            self.runs[item.nodeid] += 1
            for report in reports:
                if report.failed:
                    crash = getattr(report.longrepr, "reprcrash", None)
                    message = (crash.message if crash else report.longreprtext)[:300]
                    self.failures[item.nodeid].append((self.seed, message))
        return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3000, help="seeds per test")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--chapters", nargs="*", help="e.g. ch08_decoding (default: all)")
    parser.add_argument("-k", default="", help="only the tests matching this pytest -k")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    files = sorted((ROOT / "tests" / "exercises").glob("test_ch*.py"))
    if args.chapters:
        files = [f for f in files if f.stem.removeprefix("test_") in args.chapters]
    sweep = SeedSweep(range(args.first, args.first + args.seeds))
    start = time.monotonic()
    options = ["-q", "-p", "no:cacheprovider", *(["-k", args.k] if args.k else [])]
    code = pytest.main([*map(str, files), *options], [sweep])  # reports go to the sweep only
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or not sweep.runs:
        print(f"pytest could not run the tests (exit code {int(code)})")
        return 2
    seeded = {test: n for test, n in sweep.runs.items() if n > 1}
    print(
        f"\n{len(seeded)} seeded tests x {args.seeds} seeds (from {args.first}) and "
        f"{len(sweep.runs) - len(seeded)} unseeded tests in {time.monotonic() - start:.0f} s"
    )
    for test, failures in sorted(sweep.failures.items()):
        print(f"FAILED {test}: {len(failures)} of {sweep.runs[test]} runs")
        for seed, message in failures[:EXAMPLES]:
            print(f"    seed {seed}: {message}")
    if not sweep.failures:
        print("no test failed the reference solution for any seed")
    return 1 if sweep.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
