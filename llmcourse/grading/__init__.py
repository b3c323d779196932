"""The autograder: grading tests in a trusted process, student code in sandboxed kernels.

Instructors run ``llmcourse grade`` on submissions (files or folders); students run
``llmcourse check`` or the last cell of an exercise, ``self_check("chNN_name")``. The
pieces, one idea per module:

- :mod:`.notebook`: validate a submission, match it to its exercise, place its answer
  cells into the pristine exercise, and plan what runs for each answer;
- :mod:`.offlimits`, :mod:`.blocking`: what each answer must write itself, made
  unavailable in its kernel; the stand-ins that replace an earlier answer in a later one;
- :mod:`.sandbox`, :mod:`.confine`: which sandbox the machine allows, and the system
  calls that confine a kernel (namespaces, a minimal root, limits, no privileges);
- :mod:`.spawner`, :mod:`.forkserver`: a warm fork server per exercise, one forked
  kernel per answer; :mod:`.folders`: their temporary folders, removed once their
  process is gone;
- :mod:`.kernel`, :mod:`.replies`: talking to a kernel, with every message size-checked
  before it is parsed;
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
  any way; their messages are untrusted input: every frame is size-checked and counted
  before anything is parsed, JSON is parsed only after its values are counted (so
  parsing is linear in time and memory), nothing is evaluated or unpickled, and each
  grading worker runs under its own memory limit (``Limits.grader_memory``). Patching
  ``torch.allclose``, ``assert``, pytest, numpy or IPython's formatters inside the
  kernel changes nothing: the comparisons happen in the grader. Values come back as
  fresh built-in objects, so an object equal to everything, or a subclass with odd
  behaviour, cannot pass a comparison.
- Printed output (a forged "score: 100%") is never parsed; results are written only
  by the grader, into a folder the kernel cannot see. What a submission controls (its
  file name, what it prints or raises) reaches an instructor's terminal and gradebook
  escaped (control characters, ANSI escape sequences) and never as a formula (OWASP's
  CSV-injection rule); the JSON logs keep it exactly, in ASCII.
- Inputs are drawn afresh on every run (``fresh_seed``), so a table of answers to the
  public tests scores nothing; hidden tests reveal only the kind of failure and a hint.
- The answer is the student's own: what an exercise declares off limits (by default
  the course package's implementation of that answer; torch functions such as
  ``F.scaled_dot_product_attention``) has no code in the answer's kernel: its
  functions' code is replaced by a stub, its source and compiled files too in the
  kernel's view of the file system, and ATen operators get a stub kernel, so importing,
  ``getattr``, ``importlib.reload``, reading the source or calling ``torch.ops`` all
  end in "uses <name>, which this exercise asks you to write" (without namespaces the
  source file stays readable). Copying an implementation's text is not prevented.
- Each kernel has a wall clock per cell, per call and per submission (interrupt, then
  kill), an address-space limit, a process limit, a file-size limit, capped output, no
  stdin, and starts from a pristine exercise in an empty home. Kernels are forked from
  a fork server that only imported modules and is never changed by a kernel, so no
  state passes from one submission to the next.

What the sandbox is depends on the platform (each result's JSON log says which held,
under ``sandbox``):

- As root on Linux with namespaces (this repository's CI, a grading server): the
  kernel runs as a user of its own (uid 200000 + 2 x the grader's pid, or + 1), as
  process 1 of its own PID namespace (every process it starts dies with it), with its
  own IPC namespace (System V shared memory, message queues, semaphores and POSIX
  message queues vanish with it), its own UTS namespace, no key rings (a seccomp filter
  refuses their system calls: a user's key ring outlives its processes) and no network
  (a private network namespace; abstract Unix sockets are per network namespace too). Its root
  file system is an empty read-only one holding only the system folders (``/usr``,
  ``/etc``, the ``/bin`` and ``/lib`` links), ``/dev/null`` and the other harmless
  devices, a ``/proc`` of its own processes, and, read-only, the interpreter, the
  virtual environment and the course package: not the repository's ``.git``, tests,
  solutions or book, not any other copy of them, not ``/run/lock``, not the
  submissions or the results. Its only writable places (home, ``/tmp``, ``/var/tmp``,
  ``/dev/shm`` and its runtime folder) are one file system in memory with one size
  and file-count quota (``Limits.scratch``), inside the fork server's private mount
  namespace: nothing of it is ever on the host's disk, and it is gone when the kernel
  ends (the fork server's empty mount point is removed with it, by the batch if the
  worker died, by the next fork server if the grading process was killed). It cannot
  signal the grader, write the repository, or read other users' files.
- As an ordinary user on Linux (a student's self-check), where the kernel allows user
  namespaces (most distributions): the same, through a user namespace, except that the
  kernel keeps the user's identity (without any capability) and there is no process
  limit.
- Without namespaces (Docker without ``CAP_SYS_ADMIN``, such as Gradescope): no
  network, file system or process isolation: the kernel can read whatever the grader's
  user can, including the tests and the stand-ins (they are public in this course
  anyway; keep private tests elsewhere), its runtime folder is on the host's disk and
  only single files are size-limited; off-limits code is still stubbed in memory. As
  root it runs as a user of its own where the interpreter is readable by other users.
- Other systems (macOS, Windows): not supported by the grader (it needs Linux; use a
  Linux machine, WSL or a container).

Not defended against: kernel exploits and side channels, denial of service of the
machine through the file system outside the private mounts when namespaces are
unavailable, and a student who copies a correct answer or an implementation's text
(that is plagiarism, not grading).
"""

from llmcourse.grading.selfcheck import self_check

__all__ = ["self_check"]
