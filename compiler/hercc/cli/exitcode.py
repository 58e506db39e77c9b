"""Every status hercc exits with."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # an invalid spec, a failed operation, a failed check (fmt --check, lab check)
    ERROR = 1
    # a malformed command line
    USAGE = 2
    # plan --detailed-exitcode and diff found changes: Terraform's number, the same as USAGE
    CHANGES = 2
    # a bug in hercc (sysexits' EX_SOFTWARE)
    INTERNAL = 70
    # Ctrl-C: 128 + SIGINT, as shells report it
    INTERRUPTED = 130
    # the reader of stdout went away (`hercc ... | head -1`): 128 + SIGPIPE, what a shell
    # shows for a Unix tool that SIGPIPE ended
    BROKEN_PIPE = 141
