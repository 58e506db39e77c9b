"""`hercc lab up|down`: bring a named lab up and leave it running; take it down for sure.

`up_lab` claims the state file, builds the lab with the harness
(hercc.lab.harness.Lab) and records it; on any failure it removes what it
built. `down_lab` stops the recorded wireguard-go processes (only while
their start time still matches: a recycled PID is never killed; for a lab
whose `up` was cut short, also the ones found in its namespaces), deletes
the namespaces, the lab's directory and the state file. Kept apart from
the state file it writes and from check and status, which only read it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from hercc.diagnostics import LabError
from hercc.lab import nodes
from hercc.lab.daemons import stop_all
from hercc.lab.harness import Lab
from hercc.lab.internet import remove_etc
from hercc.lab.keys import GeneratedKeys
from hercc.lab.persistent.locking import lab_locked
from hercc.lab.persistent.statefile import (
    DEFAULT_NAME,
    STATE_FILE,
    LabState,
    NoSuchLab,
    alive,
    check_name,
    claim,
    list_labs,
    load_state,
    record,
    record_pids,
    state_root,
    write_state,
)
from hercc.lab.public import internet_namespace
from hercc.lab.public_paths import public_paths
from hercc.lab.spec import compile_for_lab
from hercc.lab.topology import prefix_for_lab
from hercc.lab.underlay import delete_namespace, netns_exists
from hercc.state.bpf_load import forget_namespace
from hercc.sysio.process import run
from hercc.sysio.procfs import cmdline, comm, proc_start_time, stop

# what a lab runs in its namespaces, besides the nodes' wireguard-go (ping: the tunnels' probes)
_DAEMONS = ("wireguard-go", "named", "haproxy", "ping", "nfcapd", "charon")
_SERVER_MODULE = "hercc.lab.servers"

# ---------------------------------------------------------------- up


def up_lab(
    spec: str,
    name: str = DEFAULT_NAME,
    state_dir: Path | None = None,
    *,
    sources: dict[str, str] | None = None,
    lock_timeout: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> LabState:
    """Compile `spec`, bring it up as lab `name` and record it; the lab keeps running.

    Raises LabExists when `name` is taken, LabError when the lab cannot be
    built (whatever was built is removed again), SpecError for a bad spec,
    LabLocked when another command holds the lab past `lock_timeout`.
    """
    root = state_dir or state_root()
    prefix = prefix_for_lab(check_name(name))
    with lab_locked(name, root, timeout=lock_timeout, on_wait=on_wait, create=True) as labdir:
        return _up_locked(spec, name, root, labdir, prefix, sources)


def _up_locked(
    spec: str,
    name: str,
    root: Path,
    labdir: Path,
    prefix: str,
    sources: dict[str, str] | None,
) -> LabState:
    path = labdir / STATE_FILE
    for other in list_labs(root):
        if other == name:
            continue
        with contextlib.suppress(LabError):
            if load_state(other, root).prefix == prefix:
                raise LabError(f"labs {other!r} and {name!r} would share the name prefix {prefix}")
    state = LabState(
        name=name,
        prefix=prefix,
        spec=os.path.abspath(spec),
        directory=str(labdir),
        keys_dir=str(labdir / "keys"),
        apply_dir=str(labdir / "nodes"),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    claim(state, path)  # from here on, `down` knows this lab
    lab: Lab | None = None
    try:
        for leftover in (state.keys_dir, state.apply_dir):  # of a lab whose state was removed
            shutil.rmtree(leftover, ignore_errors=True)
        start = time.monotonic()
        keys = GeneratedKeys(Path(state.keys_dir))
        compiled, keys = compile_for_lab(spec, keys, sources=sources)
        state.timings["compile"] = round(time.monotonic() - start, 3)
        lab = Lab(compiled.ir, prefix=prefix, keys=keys, workdir=labdir)
        record(state, lab.topology, lab.model)
        write_state(state, path)
        lab.up()  # tears down what it built if it fails
        record_pids(state, state.interfaces)
        state.daemons = list(lab.daemons)
        state.public = public_paths(lab.model)
        state.left_out = lab.left_out
        for iface in state.interfaces:
            if iface.start_time is None:
                log = Path(iface.log).read_text(errors="replace").strip()
                raise LabError(f"wireguard-go for {iface.name} (pid {iface.pid}) exited: {log}")
        state.timings.update({k: round(v, 3) for k, v in lab.timings.items()})
        state.timings["up"] = round(time.monotonic() - start, 3)
        state.status = "up"
        write_state(state, path)
    except BaseException:
        if lab is not None:
            try:
                lab.down()  # only what this lab built; idempotent after a failed up()
            except LabError:
                raise  # leftovers: keep the state file, so that `down` can retry
        shutil.rmtree(labdir, ignore_errors=True)
        raise
    return state


# ---------------------------------------------------------------- down


def _by_prefix(name: str, labdir: Path) -> LabState:
    """A lab whose state file is unreadable, as far as its name prefix tells."""
    prefix = prefix_for_lab(name)
    listed = Path("/run/netns")
    found = sorted(p.name for p in listed.iterdir()) if listed.is_dir() else []
    return LabState(
        name=name,
        prefix=prefix,
        spec="",
        directory=str(labdir),
        keys_dir=str(labdir / "keys"),
        created="",
        namespaces=[ns for ns in found if ns.startswith(prefix + "-")],
    )


def _strays(state: LabState) -> list[tuple[int, int]]:
    """The lab's processes inside its namespaces (for a lab whose `up` was cut short):
    wireguard-go, named, HAProxy and the workloads' servers."""
    found: list[tuple[int, int]] = []
    for ns in state.namespaces:
        if not netns_exists(ns):
            continue
        out = run(["ip", "netns", "pids", ns], check=False, timeout=10, error=LabError).stdout
        for word in out.split():
            if not word.isdigit():
                continue
            pid = int(word)
            start = proc_start_time(pid)
            ours = comm(pid) in _DAEMONS or _SERVER_MODULE in (cmdline(pid) or [])
            if ours and start is not None:
                found.append((pid, start))
    return found


def _teardown(state: LabState) -> list[str]:
    """Stop the lab's processes, delete its namespaces and the internet namespace's /etc;
    what could not be removed."""
    errors = stop_all(state.daemons)
    victims = [(i.pid, i.start_time) for i in state.interfaces if i.pid and i.start_time]
    if state.apply_dir:  # the nodes' tunnel probes, as the executor recorded them
        victims += [p for h in state.hosts for p in nodes.running_probes(state.apply_dir, h.node)]
        victims += [
            p for h in state.hosts for p in nodes.running_exporters(state.apply_dir, h.node)
        ]
    if state.status != "up":
        victims += _strays(state)
    for pid, start in dict.fromkeys((p, s) for p, s in victims if p is not None and s):
        if not stop(pid, start):
            errors.append(f"pid {pid} ({comm(pid)}) did not exit")
    for iface in state.interfaces:
        if not alive(iface):
            with contextlib.suppress(FileNotFoundError):
                Path(iface.socket).unlink()
    remove_etc(internet_namespace(state.prefix))
    for ns in reversed(state.namespaces):
        error = delete_namespace(ns)
        if error is not None:
            errors.append(error)
        if not netns_exists(ns):  # the dataplane's pins of the namespace, as Lab.down does
            forget_namespace(ns)
    return errors


def down_lab(
    name: str = DEFAULT_NAME,
    state_dir: Path | None = None,
    *,
    lock_timeout: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> LabState | None:
    """Remove lab `name` and its directory; None when there was no such lab.

    LabLocked when another command holds the lab past `lock_timeout`.
    """
    root = state_dir or state_root()
    try:
        with lab_locked(name, root, timeout=lock_timeout, on_wait=on_wait) as labdir:
            try:
                state = load_state(name, root)
            except NoSuchLab:
                shutil.rmtree(labdir, ignore_errors=True)  # what a failed `up` or `down` left
                return None
            except LabError:  # unreadable: what carries the lab's name prefix
                state = _by_prefix(name, labdir)
            errors = _teardown(state)
            if errors:
                raise LabError(f"lab {name!r}: teardown incomplete: " + "; ".join(errors))
            shutil.rmtree(labdir, ignore_errors=True)  # the state, keys, nodes and the lock
            return state
    except NoSuchLab:
        with contextlib.suppress(NoSuchLab):
            load_state(name, root)  # OldLab: a lab of an older hercc, say what to do
        return None
