"""The CLI's messages for mistakes that are not in a spec: each says what is wrong, with exit 1 or 2.

Run through `hercc` as a user would; none of them is an internal error (70).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.cli.exitcode import ExitCode
from tests.conftest import EXAMPLES


def hercc(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("build")
    spec = root / "reference.herc"
    shutil.copy(EXAMPLES / "reference.herc", spec)
    assert hercc("build", str(spec), "-o", str(root / "out"))[0] == ExitCode.OK
    return root / "out"


# ---------------------------------------------------------------- summary


def test_summary_of_a_build(build: Path) -> None:
    code, out, _ = hercc("summary", str(build))
    assert code == ExitCode.OK and out.startswith("Networks (1)")


def _broken(build: Path, tmp_path: Path, ir_json: object) -> str:
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    (copy / "ir.json").write_text(json.dumps(ir_json), encoding="utf-8")
    return str(copy)


MALFORMED = {
    "empty object": {},
    "a list": [],
    "no networks": {"ir_version": 1},
    "networks not a list": {"ir_version": 1, "networks": {"prod": 1}},
    "a node without its fields": {"ir_version": 1, "networks": [], "nodes": [{}]},
}


@pytest.mark.parametrize("ir_json", MALFORMED.values(), ids=list(MALFORMED))
def test_summary_of_a_malformed_ir_is_a_clear_error(
    build: Path, tmp_path: Path, ir_json: object
) -> None:
    out_dir = _broken(build, tmp_path, ir_json)
    code, out, err = hercc("summary", out_dir)
    assert (code, out) == (ExitCode.ERROR, "")
    assert err.startswith(f"hercc: error: {out_dir}: not a hercc build directory (ir.json: ")
    assert err.count("\n") == 1


def test_summary_of_an_ir_of_another_version_says_which(build: Path, tmp_path: Path) -> None:
    data = json.loads((build / "ir.json").read_text(encoding="utf-8"))
    out_dir = _broken(build, tmp_path, {**data, "ir_version": 0})
    code, _, err = hercc("summary", out_dir)
    assert code == ExitCode.ERROR
    assert err == (
        f"hercc: error: {out_dir}/ir.json: ir_version 0, this hercc reads 1 "
        "(rebuild it with this hercc)\n"
    )


def test_summary_of_a_malformed_manifest_is_a_clear_error(build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    (copy / "manifest.json").write_text('{"files": 3}', encoding="utf-8")
    code, _, err = hercc("summary", str(copy))
    assert code == ExitCode.ERROR
    assert err.startswith(f"hercc: error: {copy}: not a hercc build directory (manifest.json: ")


# ---------------------------------------------------------------- route

REF = str(EXAMPLES / "reference.herc")
# What every command on the reference warns first: its zone's nameserver lies in the zone.
REF_WARNINGS = hercc("check", REF)[2].removesuffix(
    f"{REF}: ok (1 networks, 4 nodes, 2 workloads)\n"
)


def test_the_reference_warns_only_of_its_zone() -> None:
    assert REF_WARNINGS.startswith(f"{REF}:96:3: warning[W301]: dns example.com: ")
    assert REF_WARNINGS.count("warning[") == 1


@pytest.mark.parametrize(
    "flags",
    [
        ["--from", "nope"],
        ["--to", "nope"],
        ["--from", "nope", "--to", "alpha"],
        ["--from", "alpha", "--to", "nope", "--network", "prod"],
    ],
)
def test_route_names_the_unknown_node(flags: list[str]) -> None:
    code, out, err = hercc("route", REF, *flags)
    assert (code, out) == (ExitCode.USAGE, "")
    assert err == REF_WARNINGS + (
        "hercc: error: no node named 'nope' (nodes: alpha, beta, delta, gamma)\n"
    )


def test_route_suggests_a_near_name() -> None:
    code, _, err = hercc("route", REF, "--from", "alpah")
    assert code == ExitCode.USAGE
    assert err == REF_WARNINGS + "hercc: error: no node named 'alpah'; did you mean \"alpha\"?\n"


def test_route_says_which_nodes_share_no_network() -> None:
    two = str(EXAMPLES / "two-networks.herc")
    assert hercc("route", two, "--from", "p3", "--to", "n2")[2] == (
        "hercc: error: nodes p3 and n2 share no network\n"
    )


def test_route_from_a_node_alone_in_its_network(tmp_path: Path) -> None:
    spec = tmp_path / "alone.herc"
    spec.write_text(
        "network solo { range 10.1.0.0/16 }\n\nnode a {\n  network  solo\n  endpoint 192.0.2.1\n}\n",
        encoding="utf-8",
    )
    code, _, err = hercc("route", str(spec), "--from", "a")
    assert (code, err) == (
        ExitCode.USAGE,
        "hercc: error: node a shares no network with another node\n",
    )


# ---------------------------------------------------------------- diff


def test_diff_from_dev_null_creates_every_node() -> None:
    """/dev/null is an empty network, as in `diff /dev/null FILE`: every node is new."""
    code, out, err = hercc("diff", "/dev/null", REF)
    assert (code, err) == (ExitCode.CHANGES, "")
    assert [line for line in out.splitlines() if line.startswith("# node ")] == [
        "# node alpha",
        "# node beta",
        "# node delta",
        "# node gamma",
    ]
    assert " to destroy" in out and "0 to change, 0 to destroy" in out


def test_diff_to_dev_null_destroys_every_node() -> None:
    code, out, _ = hercc("diff", REF, "/dev/null")
    assert code == ExitCode.CHANGES and "0 to add, 0 to change" in out


def test_diff_of_dev_null_with_itself_is_no_difference() -> None:
    assert hercc("diff", "/dev/null", "/dev/null")[0] == ExitCode.OK


def test_diff_of_what_is_neither_a_spec_nor_a_build_says_so(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty").mkdir()
    for path in (fifo, tmp_path / "empty"):
        code, _, err = hercc("diff", str(path), REF)
        assert (code, err) == (
            ExitCode.ERROR,
            f"hercc: error: {path}: not a spec file or a build directory\n",
        )
    code, _, err = hercc("diff", str(tmp_path / "missing.herc"), REF)
    assert err == f"hercc: error: {tmp_path}/missing.herc: no such file or directory\n"


def test_route_from_a_node_to_itself_says_so() -> None:
    assert hercc("route", REF, "--from", "beta", "--to", "beta")[2] == REF_WARNINGS + (
        "hercc: error: --from and --to name the same node, beta\n"
    )


def test_dev_null_is_the_ir_of_an_empty_spec(tmp_path: Path) -> None:
    from hercc.cli.diff import EMPTY
    from hercc.pipeline import compile_spec

    (tmp_path / "empty.herc").write_text("", encoding="utf-8")
    assert compile_spec(str(tmp_path / "empty.herc"), use_lock=False).ir == EMPTY


# ---------------------------------------------------------------- usage errors and --format json

# (argv, message, whether argparse found it and so text shows the usage line first)
USAGE_ERRORS = {
    "unknown option": (
        ["check", "--format", "json", "--bogus", REF],
        "unrecognized arguments: --bogus",
        True,
    ),
    "no SPEC": (
        ["build", "--format=json", "-o", "out"],
        "the following arguments are required: SPEC",
        True,
    ),
    "option without its value": (
        ["route", REF, "--format", "json", "--network"],
        "argument --network: expected one argument",
        True,
    ),
    "missing SPEC file": (
        ["check", "--format", "json", "nope.herc"],
        "nope.herc: no such file",
        False,
    ),
}
CASES = list(USAGE_ERRORS.values())


@pytest.mark.parametrize(("argv", "message", "from_argparse"), CASES, ids=list(USAGE_ERRORS))
def test_usage_errors_with_format_json_are_one_json_object(
    argv: list[str], message: str, from_argparse: bool
) -> None:
    code, out, err = hercc(*argv)
    assert (code, err) == (ExitCode.USAGE, "")
    assert out == json.dumps({"ok": False, "error": message, "kind": "usage"}, indent=2) + "\n"


@pytest.mark.parametrize(("argv", "message", "from_argparse"), CASES, ids=list(USAGE_ERRORS))
def test_usage_errors_in_text_are_one_line_after_the_usage(
    argv: list[str], message: str, from_argparse: bool
) -> None:
    text_argv = [a for a in argv if a not in ("--format", "json", "--format=json")]
    code, out, err = hercc(*text_argv)
    assert (code, out) == (ExitCode.USAGE, "")
    assert err.endswith(f"hercc: error: {message}\n")
    assert err.startswith("usage: hercc ") == from_argparse
