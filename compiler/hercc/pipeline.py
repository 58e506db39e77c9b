"""The fixed pipeline: load -> AST -> resolve -> check -> allocate -> underlay -> IR ->
gateway tunnels -> routing.

Backends (pure functions over the IR) run after it; keys are applied by the build.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from hercc import build_ast, ir, loader
from hercc.diagnostics import Collector, Diagnostic, OperationError
from hercc.keys import load_public_keys
from hercc.lockfile import Lock, lock_path, read_lock
from hercc.passes.allocate import allocate
from hercc.passes.check import check
from hercc.passes.gateways import gateway_tunnels
from hercc.passes.keys import with_public_keys
from hercc.passes.lower import lower
from hercc.passes.resolve import resolve
from hercc.passes.routing import NetworkRoutes, route
from hercc.passes.underlay import underlay


@dataclass(frozen=True)
class Compiled:
    ir: ir.IR
    lock: Lock
    lock_changed: bool
    lock_file: str
    routes: dict[str, NetworkRoutes]
    warnings: tuple[Diagnostic, ...] = ()  # reported by the CLI; they do not stop the build


def compile_spec(
    path: str,
    sources: dict[str, str] | None = None,
    *,
    frozen: bool = False,
    use_lock: bool = True,
    pubkeys: dict[str, str] | None = None,
    peers_for: Collection[str] | None = None,
    keys_dir: str | None = None,
) -> Compiled:
    """Compile a spec file. Raises SpecError (invalid spec) or OperationError.

    With `pubkeys` (hercc keys' public.json), every node must have a key and
    the IR carries them; without, only keys pinned in the spec appear.
    `keys_dir` is the same, read from a keys directory's public.json.
    `peers_for`: the nodes whose peers routing computes (None: every node).
    """
    if keys_dir is not None:
        pubkeys = load_public_keys(keys_dir)
    loaded = loader.load(path, sources)
    lock_file = lock_path(path)
    old = read_lock(lock_file) if use_lock else Lock()
    diags = Collector()
    spec = build_ast.build(loaded.stmts, diags)
    names = resolve(spec, diags)
    check(spec, names, diags)
    diags.raise_if_any()
    alloc = allocate(spec, names, old, diags)
    graph = underlay(spec, names, diags)
    diags.raise_if_any()
    model = lower(spec, alloc, graph)
    if pubkeys is not None:
        model = with_public_keys(model, pubkeys)
    model = gateway_tunnels(model, spec, old, alloc.lock, diags)
    diags.raise_if_any()
    result, routes = route(model, spec, diags, peers_for=peers_for)
    diags.raise_if_any()
    changed = alloc.lock.to_data() != old.to_data()
    if frozen and changed:
        raise OperationError(
            f"{lock_file} is out of date and --frozen forbids changing it; "
            "run `hercc build` without --frozen and commit the lock"
        )
    return Compiled(result, alloc.lock, changed, lock_file, routes, tuple(diags.warnings))
