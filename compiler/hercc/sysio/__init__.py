"""System I/O, written once: subprocesses, atomic files, processes and /proc.

- `process`: `run` (bounded, captured, a typed error chosen by the caller),
  `run_attached` (an interactive command) and `start` (a long-running,
  detached process);
- `files`: `write_atomic` (a unique temporary file, fsync, rename; symbolic
  links followed), `stage` (the same, put in place later), `make_dirs` and
  `mark_top_directory` (a hint to ext4's allocator);
- `forked`: `Forked`, tasks run by forked worker processes that share the
  parent's memory (a big build's parts), as many as `cpus.usable_cpus`
  (affinity, capped by a cgroup CPU quota);
- `procfs`: a process's start time, command line and name from /proc, "is
  this still the process we recorded", `stop`, and the PID files.

Nothing here prints. Every failure is either the caller's typed error
(`error=`), an OperationError that says what could not be written or made
(`files`, the PID files), or an OSError the caller turns into one.
"""
