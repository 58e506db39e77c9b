"""Named labs that outlive the process that built them (`hercc lab up|check|status|exec|down`).

`up_lab` brings a spec up with the harness (hercc.lab.harness.Lab: the
underlay by the harness, every node's overlay by `hercc apply`'s code) and
returns, leaving the namespaces and the wireguard-go processes (detached, in
their own sessions) running. Everything it created is recorded in a state
file in the lab's own directory <root>/<name>/ (root: $HERCULES_LAB_DIR or
/var/lib/hercules/labs): state.json, lock, keys/, and nodes/ (every node's
state directory as `hercc apply` keeps it,
the registry of its namespaces `<node>.json`, its wireguard-go PIDs
`<node>.wireguard-go.json` and their logs), so that `hercc lab plan|apply`
(hercc.lab.overlay) can read and change a lab node like a real one. Every
later command starts from the state file alone:

  - `check_lab`: every source (node@network, workload) pings every overlay
    address of its networks, IPv4 and IPv6, in parallel;
  - `check_public`: every public path (http, https, tcp through each
    gateway, DNS per name) from the internet namespace;
  - `check_collectors`: every NetFlow collector's nfcapd runs and listens;
  - `lab_status`: namespaces present, recorded PIDs alive, handshake ages;
  - `target_namespace`: the namespace behind a node, node@network or workload;
  - `down_lab`: kills the recorded PIDs (only if their start time still
    matches: a recycled PID is never killed), deletes the recorded namespaces,
    the lab's directory and the state file. Idempotent.

`up`, `lab apply` and `down` hold the lab's lock (flock on <name>/lock)
throughout, so they never interleave. The state file is created
exclusively before anything is built, so a lab whose `up` was killed
halfway is still known to `down` (state "starting").

  statefile  LabState and its file: load, save, claim, version; what a topology records
  locking    lab_locked: the lab's lock
  lifecycle  up_lab, down_lab
  probes     check_lab, check_public, check_collectors
  status     lab_status
  targets    target_namespace, exec_in

This package exposes what the `hercc lab` commands call; the lab's other
modules (overlay) and the tests import the parts.
"""

from hercc.lab.persistent.lifecycle import down_lab, up_lab
from hercc.lab.persistent.locking import LabLocked, lab_locked
from hercc.lab.persistent.probes import check_collectors, check_lab, check_public
from hercc.lab.persistent.statefile import (
    LabState,
    NoSuchLab,
    check_name,
    list_labs,
    load_state,
)
from hercc.lab.persistent.status import lab_status
from hercc.lab.persistent.targets import NoSuchTarget, exec_in

__all__ = [
    "LabLocked",
    "LabState",
    "NoSuchLab",
    "NoSuchTarget",
    "check_collectors",
    "check_lab",
    "check_name",
    "check_public",
    "down_lab",
    "exec_in",
    "lab_locked",
    "lab_status",
    "list_labs",
    "load_state",
    "up_lab",
]
