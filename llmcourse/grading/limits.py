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
        tmpfs: size of each private scratch file system (home, /tmp, /dev/shm).
        output_per_cell: printed output kept per cell or call; the rest is counted.
        output_per_submission: printed output kept for the whole submission.
        result_size: largest encoded value a call may return.
        notebook_size: largest submission file accepted.
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
    tmpfs: int = 256 * MiB
    output_per_cell: int = 64 * 1024
    output_per_submission: int = 1 * MiB
    result_size: int = 16 * MiB
    notebook_size: int = 20 * MiB

    def as_dict(self) -> dict[str, float | int]:
        """The limits as plain data, for logs."""
        return asdict(self)
