"""Grade many submissions in parallel worker processes, resumably, one result each.

Each worker is a Python process (``python -m llmcourse.grading.batch OPTIONS``: paths
in on stdin, one JSON result per line out) that grades submissions one at a time with
:func:`~llmcourse.grading.grade.grade_file` (pytest in the worker, the student's code
in kernels forked by the worker's fork server of each exercise), under a memory limit
of its own (``Limits.grader_memory``). The parent only schedules (a worker keeps to one
exercise while it can, so that it starts few fork servers), writes results, and
watches: a worker that dies or overruns its submission's time gets that submission an
``error`` result, is killed together with its kernels, and is replaced, and what it
left in the temporary folder is removed; so every submission gets exactly one result
and the batch always finishes. Workers are also replaced after many submissions.

Output, in ``out`` (never beside the submissions; kernels never see it)::

    gradebook.csv                 one row per submission, one column per answer
    logs/<student>.json           the full result (see grade_file), the resume key
    logs/grader.log               what the workers printed (warnings, crashes)
    gradescope/<student>/results.json

A submission whose log holds the same key (its SHA-256, the exercises' and tests'
fingerprint, the limits) is not graded again unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import select
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from llmcourse.grading import report
from llmcourse.grading.folders import remove_folders_of
from llmcourse.grading.grade import Options, check_options, exercise_hint, grade_file, sha256
from llmcourse.grading.sandbox import kernel_uids, kill_user_processes

TASKS_PER_WORKER = 100  # then a fresh worker (its memory grows ~0.2 MiB per submission)


def submissions_in(paths: list[Path]) -> list[Path]:
    """The notebooks named, and those in the folders named (not recursive)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def error_result(path: Path, message: str) -> dict[str, Any]:
    """The result of a submission the grader failed on (not the student's fault)."""
    try:
        digest = sha256(path)
    except OSError:
        digest = ""
    return {
        "student": path.stem,
        "submission": str(path),
        "sha256": digest,
        "exercise": None,
        "status": "error",
        "message": message,
        "score": 0.0,
        "max_score": None,
        "answers": [],
        "tests": [],
        "notes": [],
        "errors": [message],
    }


def resume_key(path: Path, options: Options) -> str:
    """What a result depends on: the file, the course material and the options."""
    course = options.course
    digest = hashlib.sha256(sha256(path).encode())
    for name in course.names():
        digest.update(course.fingerprint(name).encode())
    settings = [options.limits.as_dict(), options.exercise, options.visible_only]
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def limit_memory(limit: int) -> None:
    """Cap this process's address space (soft limit: its children may set their own)."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def worker_main(options: Options) -> None:
    """A worker process: grade each path read from stdin; write each result as one JSON
    line to the original stdout (anything else printed goes to stderr). Its memory is
    capped (``Limits.grader_memory``): what a kernel sends cannot exhaust the machine."""
    limit_memory(options.limits.grader_memory)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    for line in sys.stdin:
        path = Path(json.loads(line))
        try:
            result = grade_file(path, options)
        except BaseException:  # noqa: BLE001 - a grader bug must not lose the submission
            result = error_result(path, f"the grader failed:\n{traceback.format_exc()}")
        protocol.write(json.dumps(result) + "\n")
        protocol.flush()


class _Worker:
    """A worker process and the submission it grades."""

    def __init__(self, options: Options, log: IO[bytes]) -> None:
        command = [sys.executable, "-m", "llmcourse.grading.batch", options.to_json()]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, bufsize=0
        )
        self.buffer = b""
        self.exercise = ""  # what it grades (see _Pool.run)
        self.path: Path | None = None
        self.started = 0.0
        self.graded = 0

    def send(self, path: Path) -> None:
        assert self.process.stdin is not None
        self.path, self.started = path, time.monotonic()
        self.process.stdin.write(json.dumps(str(path)).encode() + b"\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, Any] | None:
        """The result, once its line is complete (reads what is available)."""
        assert self.process.stdout is not None
        if b"\n" not in self.buffer:
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            self.buffer += chunk
            if not chunk:
                return None
        if b"\n" not in self.buffer:
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.path, self.graded = None, self.graded + 1
        return json.loads(line)

    def stop(self) -> None:
        """Kill the worker and every kernel it started; remove what it left."""
        self.process.kill()
        self.process.wait()
        self.cleanup()
        self._close_pipes()

    def cleanup(self) -> None:
        """Once the worker is dead: kill its kernels (they die with it, this is a safety
        net) and remove its runtime folders."""
        if os.geteuid() == 0:
            for uid in kernel_uids(self.process.pid):
                kill_user_processes(uid)
        remove_folders_of(self.process.pid)

    def retire(self) -> None:
        """Let an idle worker exit (it stops at the end of its input); kill it if it hangs."""
        self._close_pipes()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.stop()
            return
        self.cleanup()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass


class _Pool:
    """Worker processes grading submissions; every submission gets one result."""

    def __init__(self, workers: int, options: Options, log: IO[bytes]) -> None:
        self.options, self.log = options, log
        self.workers = [_Worker(options, log) for _ in range(workers)]
        self.limit = options.limits.submission_timeout + options.limits.grader_margin

    def run(self, paths: list[Path], on_result: Callable[[dict[str, Any]], None]) -> None:
        """Grade ``paths``, calling ``on_result(result)`` as each is done. A worker takes
        the submissions of one exercise while there are any, then those of the largest
        exercise no other worker grades (if none, the largest), so that workers start few
        fork servers (they are per exercise)."""
        todo: dict[str, list[Path]] = {}
        for path in reversed(paths):
            todo.setdefault(exercise_hint(path, self.options), []).append(path)
        while todo or any(w.path for w in self.workers):
            for i, worker in enumerate(self.workers):
                if worker.path is None and todo:
                    if worker.graded >= TASKS_PER_WORKER:  # a fresh worker, to bound memory
                        worker.retire()
                        worker = self.workers[i] = _Worker(self.options, self.log)
                    if worker.exercise not in todo:
                        taken = {w.exercise for w in self.workers if w is not worker}
                        free = [name for name in todo if name not in taken] or list(todo)
                        worker.exercise = max(free, key=lambda name: len(todo[name]))
                    worker.send(todo[worker.exercise].pop())
                    if not todo[worker.exercise]:
                        del todo[worker.exercise]
            busy = [w for w in self.workers if w.path is not None]
            select.select([w.process.stdout for w in busy], [], [], 1.0)
            for i, worker in enumerate(self.workers):
                if worker.path is not None:
                    result = self._collect(worker)
                    if result is not None:
                        if worker.process.poll() is not None:
                            worker.cleanup()
                            self.workers[i] = _Worker(self.options, self.log)
                        on_result(result)

    def _collect(self, worker: _Worker) -> dict[str, Any] | None:
        """The worker's result, if done; an error result if it crashed or overran (it is
        then killed, with its kernels)."""
        path = worker.path
        assert path is not None
        ready = select.select([worker.process.stdout], [], [], 0)[0]
        result = worker.read() if ready else None
        if result is not None:
            return result
        crashed = worker.process.poll() is not None
        if not crashed and time.monotonic() - worker.started < self.limit:
            return None
        reason = (
            f"the grader crashed (exit code {worker.process.returncode})"
            if crashed
            else f"the grader did not finish within {self.limit:g} s"
        )
        worker.stop()
        return error_result(path, reason)

    def close(self) -> None:
        """Let idle workers exit; kill busy ones (after an interruption)."""
        for worker in self.workers:
            if worker.path is None:
                worker.retire()
            else:
                worker.stop()


def grade_batch(
    paths: list[Path],
    out: Path,
    options: Options,
    workers: int = 1,
    force: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Grade ``paths`` into ``out``; returns one result per path, in order.

    Raises:
        ValueError: ``out`` is a folder of submissions (or inside one), two
            submissions share a file name, or the options are bad (``check_options``).
    """
    check_options(options)
    out = out.resolve()
    folders = {p.resolve().parent for p in paths}
    if any(out == f or f in out.parents for f in folders):
        raise ValueError(f"--out {out} is beside the submissions: choose a folder elsewhere")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        duplicated = sorted({report.safe_text(s) for s in stems if stems.count(s) > 1})
        raise ValueError(f"several submissions are named {', '.join(duplicated)}")
    results: dict[Path, dict[str, Any]] = {}
    todo = []
    for path in paths:
        key, log = resume_key(path, options), out / "logs" / f"{path.stem}.json"
        previous = _read(log)
        if not force and previous.get("key") == key:
            results[path] = previous
        else:
            todo.append((path, key))
    keys = dict(todo)
    bar = tqdm(
        total=len(paths), initial=len(results), unit="nb", desc="grading", disable=not progress
    )

    def save(result: dict[str, Any]) -> None:
        path = Path(result["submission"])
        result["key"] = keys[path]
        report.write_json(result, out / "logs" / f"{path.stem}.json")
        report.write_json(
            report.gradescope(result), out / "gradescope" / path.stem / "results.json"
        )
        results[path] = result
        bar.set_postfix_str(f"{report.safe_text(path.stem)}: {result['score']:g}", refresh=False)
        bar.update()

    if todo:
        (out / "logs").mkdir(parents=True, exist_ok=True)
        with open(out / "logs" / "grader.log", "ab") as log:
            pool = _Pool(min(workers, len(todo)), options, log)
            try:
                pool.run([path for path, _ in todo], save)
            finally:
                pool.close()
                bar.close()
    ordered = [results[p] for p in paths]
    report.write_gradebook(ordered, out / "gradebook.csv")
    return ordered


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    worker_main(Options.from_json(sys.argv[1]))
