"""`hercc flows export --once` and `hercc flows top` without BPF: a node with no pinned maps
exports templates only and records a clean stop, continuing its sequence numbers across runs;
top redraws in place on a terminal and prints successive tables otherwise."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import socket
from pathlib import Path

import pytest

from hercc.cli import main as cli
from hercc.cli.views.flows import CLEAR
from hercc.flows.records import Direction, FlowCounters, FlowKey
from hercc.state.exporter_proc import ExporterFiles
from tests.flowdecode import Decoder

NODE = f"hcli{os.getpid()}"


def run(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    out.isatty = lambda: tty  # type: ignore[method-assign]
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_export_needs_the_config_apply_writes(tmp_path: Path) -> None:
    code, _, err = run("flows", "export", "--node", NODE, "--state-dir", str(tmp_path), "--once")
    assert code == 1
    assert f"no flow export config for node {NODE}" in err


@pytest.mark.parametrize("protocol", ["v9", "ipfix"])
def test_export_once_sends_templates_and_continues_the_sequence(
    tmp_path: Path, protocol: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(5)
        files = ExporterFiles(tmp_path, NODE)
        config = {
            "protocol": protocol,
            "collectors": [f"127.0.0.1:{collector.getsockname()[1]}"],
            "active_timeout_ms": 60_000,
            "idle_timeout_ms": 15_000,
            "sampling": 1,
        }
        files.config.write_text(json.dumps(config))
        argv = ("flows", "export", "--node", NODE, "--state-dir", str(tmp_path), "--once")
        headers = []
        for _ in range(2):
            code, out, err = run(*argv)
            assert (code, err) == (0, "")
            assert (
                out == f"flows export: node {NODE}: 0 records sent, 0 flows evicted before export\n"
            )
            headers.append(Decoder().decode(collector.recv(2000)).header)
        state = json.loads(files.state.read_text())
        assert state["clean"] is True and state["packets_sent"] == 2
    assert [h.version for h in headers] == [9 if protocol == "v9" else 10] * 2
    assert [h.sequence for h in headers] == [0, 1 if protocol == "v9" else 0]  # IPFIX: records


class FakeMaps:
    """NodeMaps of a node with one flow that grows by 10 packets a screen."""

    screens = 0

    def __init__(self, node: str, state_dir: Path) -> None:
        pass

    def snapshot(self) -> dict[FlowKey, FlowCounters]:
        FakeMaps.screens += 1
        n = FakeMaps.screens * 10
        a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
        key = FlowKey(a, b, 1000, 53, 17, 3, Direction.INGRESS)
        return {key: FlowCounters(n, n * 100, 1, n, 0)}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_top_redraws_on_a_terminal_and_prints_tables_otherwise(
    monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    monkeypatch.setattr("hercc.state.flow_export.NodeMaps", FakeMaps)
    FakeMaps.screens = 0
    argv = ("flows", "top", "--node", "a", "--count", "2", "--interval", "0.01")
    code, out, err = run(*argv, tty=tty)
    assert (code, err) == (0, "")
    assert FakeMaps.screens == 2
    assert out.count(CLEAR) == (2 if tty else 0)
    screens = out.split(CLEAR)[1:] if tty else out.split("\n\n" + "hercc flows top")
    assert len(screens) == 2
    first, second = (s.splitlines() for s in screens)
    assert first[-1].split()[-2:] == ["-", "-"]  # no rate yet
    assert second[-1].split()[4:6] == ["20", "2000"]  # what the map holds now
    assert second[-1].split()[-2] != "-"


def test_top_refuses_a_nonsense_interval() -> None:
    code, _, err = run("flows", "top", "--node", "a", "--interval", "0")
    assert code == 2 and "--interval" in err
