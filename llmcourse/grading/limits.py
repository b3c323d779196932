"""The resource limits of a grading run, in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Times in seconds, sizes in bytes.

    Attributes:
        cell_timeout: one cell (setup or answer) before it is interrupted.
        call_timeout: one call of a student function before it is interrupted.
        submission_timeout: wall clock for the whole submission, all kernels included.
        grader_margin: what the trusted side (tests, references) may add to that before
            the worker process grading the submission is killed.
        interrupt_grace: how long an interrupted kernel has to stop before it is killed.
        startup_timeout: for a kernel to start and answer.
        memory: address space of the kernel process (RLIMIT_AS).
        processes: processes and threads of the kernel's user (RLIMIT_NPROC).
        file_size: largest file the kernel may write (RLIMIT_FSIZE).
        scratch: all the kernel may write, in total: home, /tmp, /var/tmp, /dev/shm and
            its runtime folder are one file system in memory of this size.
        scratch_files: files and folders it may create there, in total.
        output_per_cell: printed output kept per cell or call; the rest is counted.
        output_per_submission: printed output kept for the whole submission.
        result_size: largest encoded value a call may return.
        notebook_size: largest submission file accepted.
        grader_memory: address space of each grading worker process (its tests,
            references and what it reads from kernels), so that no submission can
            take the machine's memory through the grader.
    """

    cell_timeout: float = 30.0
    call_timeout: float = 10.0
    submission_timeout: float = 300.0
    grader_margin: float = 120.0
    interrupt_grace: float = 2.0
    startup_timeout: float = 30.0
    memory: int = 4 * GiB
    processes: int = 256
    file_size: int = 64 * MiB
    scratch: int = 256 * MiB
    scratch_files: int = 16_384
    output_per_cell: int = 64 * 1024
    output_per_submission: int = 1 * MiB
    result_size: int = 16 * MiB
    notebook_size: int = 20 * MiB
    grader_memory: int = 4 * GiB

    @property
    def message_size(self) -> int:
        """Largest message a kernel may send on its shell channel: a result, in the
        text of a Python string, in JSON."""
        return 2 * self.result_size + MiB

    def as_dict(self) -> dict[str, float | int]:
        """The limits as plain data, for logs."""
        return asdict(self)
