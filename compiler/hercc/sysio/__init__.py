"""System I/O, written once: subprocesses, atomic files, processes and /proc.

- `process`: `run` (bounded, captured, a typed error chosen by the caller),
  `run_attached` (an interactive command) and `start` (a long-running,
  detached process);
- `files`: `write_atomic` (a unique temporary file, fsync, rename);
- `procfs`: a process's start time, command line and name from /proc, "is
  this still the process we recorded", `stop`, and the PID files.

Nothing here prints. Every failure is either the caller's typed error
(`error=`) or an OSError the caller turns into one.
"""
