"""Issue 8 on a live node, through `python -m hercc`: PSKs, host name endpoints, saved
plans of any name, and the node lock. The names and the fixture are test_apply_live's
(one run's prefix, wireguard-go in an underlay namespace of its own).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from hercc.cli.views.plan import NO_CHANGES
from hercc.sysio.lock import locked
from tests.test_apply_live import NET, PREFIX, WG, Node, keys_init, sh, spec_text, write_spec
from tests.test_apply_live import node as node  # the fixture, re-exported for pytest

pytestmark = pytest.mark.live

NS = f"{PREFIX}herc-{NET}"


def _psk_on(text: str) -> str:
    return text.replace("  port   51820\n", "  port   51820\n  psk    on\n", 1)


def _live_psks(env: Node) -> list[str]:
    out = sh("ip", "netns", "exec", NS, "wg", "show", WG, "preshared-keys")
    return [line.split("\t")[1] for line in out.splitlines() if line.strip()]


def test_psk_on_is_planned_created_and_set(node: Node) -> None:
    env = node
    off = write_spec(env, "off.herc", spec_text(workloads=()))
    keys_init(env, off)
    rc, _, err = env.apply(off)
    assert rc == 0, err
    assert _live_psks(env) == ["(none)", "(none)"]

    on = write_spec(env, "on.herc", _psk_on(spec_text(workloads=())))
    rc, out, err = env.plan(on, "--detailed-exitcode")
    assert rc == 2, out + err
    assert out.count("      ~ preshared_key = (sensitive, added)\n") == 2, out
    rc, _, err = env.apply(on)
    assert rc == 0, err
    files = sorted((env.keys / "psk" / NET).iterdir())
    assert [f.name for f in files] == ["a--b.psk", "a--c.psk"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert sorted(_live_psks(env)) == sorted(f.read_text().strip() for f in files)
    for f in files:
        assert f.read_text().strip() not in out + err
    rc, out, err = env.plan(on, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err

    rc, out, err = env.apply(off)  # psk off again: removed
    assert rc == 0 and out.count("(sensitive, removed)") == 2, out + err
    assert _live_psks(env) == ["(none)", "(none)"]


def test_a_host_name_endpoint_converges(node: Node) -> None:
    env = node
    spec = write_spec(
        env,
        "host.herc",
        spec_text(workloads=()).replace("endpoint 10.255.7.2:51820", "endpoint localhost:51820"),
    )
    keys_init(env, spec)
    rc, out, err = env.plan(spec)
    assert rc == 0, err
    shown = re.search(r'endpoint += "localhost:51820" \((127\.0\.0\.1|\[::1\]):51820\)\n', out)
    assert shown is not None, out
    rc, _, err = env.apply(spec)
    assert rc == 0, err
    rc, out, err = env.plan(spec, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err


def test_a_saved_plan_of_any_name_applies_and_says_what_differs(node: Node) -> None:
    env = node
    spec = write_spec(env, "one.herc", spec_text(workloads=()))
    keys_init(env, spec)
    saved = env.tmp / "beta.plan"
    rc, _, err = env.plan(spec, "-o", str(saved))
    assert rc == 0 and f"apply it with `hercc apply {saved}`" in err, err
    other = ["--keys", str(env.keys), "--netns-prefix", f"{PREFIX}x", "--state-dir", str(env.state)]
    rc, _, err = env.hercc("apply", str(saved), *other)
    assert rc == 1 and f"made with --netns-prefix '{PREFIX}', not '{PREFIX}x'" in err, err
    assert "--keys" not in err
    keyless = ["--netns-prefix", PREFIX, "--state-dir", str(env.state)]
    rc, _, err = env.hercc("apply", str(saved), *keyless)
    assert rc == 1 and "this plan was made with --keys" in err, err
    rc, _, err = env.apply(saved, node=None)
    assert rc == 0, err
    rc, out, err = env.plan(spec, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err


def test_concurrent_applies_wait_for_each_other(node: Node) -> None:
    env = node
    spec = write_spec(env, "one.herc", spec_text(workloads=()))
    keys_init(env, spec)
    procs = [
        subprocess.Popen(
            env.apply_argv(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(p.returncode, *p.communicate(timeout=120)) for p in procs]
    results = [(p.returncode, out, err) for p, (_, out, err) in zip(procs, results, strict=True)]
    assert [rc for rc, _, _ in results] == [0, 0, 0, 0], results
    applied = [out for _, out, _ in results if out != NO_CHANGES + "\n"]
    assert len(applied) == 1, results  # the others found the node done
    assert WG in sh("ip", "-n", NS, "link", "show")
    rc, out, err = env.plan(spec, "--detailed-exitcode")
    assert (rc, out) == (0, NO_CHANGES + "\n"), err

    with locked(env.state / "a.lock", what="node a"):
        rc, _, err = env.plan(spec, "--lock-timeout", "0")
        assert rc == 1, err
        assert f"the lock on node a is held by PID {os.getpid()}" in err, err
        rc, _, err = env.apply(spec, "--lock-timeout", "0.2")
        assert rc == 1 and "after waiting 0.2 s" in err and "waiting for the lock" in err, err
