"""The autograder: grading tests in a trusted process, student code in sandboxed kernels.

Instructors run ``llmcourse grade`` on submissions (files or folders); students run
``llmcourse check`` or the last cell of an exercise, ``self_check("chNN_name")``. The
pieces, one idea per module:

- :mod:`.notebook`: validate a submission, match it to its exercise, place its answer
  cells into the pristine exercise, and plan what runs for each answer;
- :mod:`.launcher`, :mod:`.kernel`: the sandboxed kernel and its limits;
- :mod:`.channel`: plain data (never pickle) between tests and student functions;
- :mod:`.errors`, :mod:`.session`: ``student.call`` and how a call can fail;
- :mod:`.expect`: assertions for grading tests (type, dtype, shape, then values);
- :mod:`.runner`: the pytest plugin (markers, points, visibility, outcomes);
- :mod:`.grade`, :mod:`.batch`: one submission; many, in parallel, resumably;
- :mod:`.report`: text, the CSV gradebook, Gradescope ``results.json``;
- :mod:`.gradescope`, :mod:`.selfcheck`: the Gradescope autograder, the self-check.

Threat model
------------
The student's code is hostile; the tests, the exercise, this package and the machine
are trusted. The score is decided in the grader's process, from plain data only:

- The student's code runs only in kernels (separate processes) that it may break in
  any way; their messages are untrusted input, size-capped and validated, and nothing
  they send is executed or unpickled. Patching ``torch.allclose``, ``assert``, pytest
  or numpy inside the kernel changes nothing: the comparisons happen in the grader.
  Values come back as fresh built-in objects, so an object equal to everything, or a
  subclass with odd behaviour, cannot pass a comparison.
- Printed output (a forged "score: 100%") is never parsed; results are written only
  by the grader, into a folder the kernel cannot see.
- Inputs are drawn afresh on every run (``fresh_seed``), so a table of answers to the
  public tests scores nothing; hidden tests reveal only the kind of failure and a hint.
- Each kernel has a wall clock per cell, per call and per submission (interrupt, then
  kill of its process group and of every process of its user), an address-space
  limit, a process limit, a file-size limit, size-limited private scratch space,
  capped output, no stdin, and starts from a pristine exercise in an empty home.

What the sandbox is depends on the platform (each kernel's report says which held,
under ``sandbox`` in the JSON log):

- As root on Linux with namespaces (this repository's CI, a grading server): the
  kernel runs as a user of its own (uid 200000 + 2 x the grader's pid, or + 1), with no network
  (a private network namespace), a private mount namespace in which the tests,
  solutions, exercises, submissions and results folders are empty, and ``/tmp``,
  ``/dev/shm`` and its home are private size-limited tmpfs. It cannot signal the
  grader, write the repository, or read other users' files.
- As an ordinary user on Linux (a student's self-check): the same namespaces through
  a user namespace when the kernel allows them; the kernel keeps the user's identity,
  so it could signal the user's other processes, and there is no process limit.
- Without namespaces (macOS; Docker without ``CAP_SYS_ADMIN``, such as Gradescope):
  no network or filesystem isolation: the kernel can read whatever the grader's user
  can, including the tests (they are public in this course anyway; keep private
  tests elsewhere). As root it still runs as a user of its own where the interpreter
  is readable by other users.

Not defended against: kernel exploits and side channels, denial of service of the
machine through the file system outside the private mounts when namespaces are
unavailable, and a student who copies a correct answer (that is plagiarism, not
grading).
"""

from llmcourse.grading.selfcheck import self_check

__all__ = ["self_check"]
