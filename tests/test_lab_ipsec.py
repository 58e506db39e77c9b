"""The lab's IPsec pieces, pure: where a link's ends and hosts go, and the responder's config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hercc.diagnostics import LabError
from hercc.lab.enterprise_ipsec import NodeCharons, ipsec_far_sides, node_setup, sites
from hercc.lab.far_sides import far_namespaces
from hercc.lab.persistent.statefile import LabState, record
from hercc.lab.topology import topology_of
from hercc.pipeline import compile_spec

SPEC = Path(__file__).parent / "lab_ipsec.herc"


def test_a_link_maps_onto_the_lab_at_its_remote_and_inside_both_selectors() -> None:
    model = compile_spec(str(SPEC)).ir
    topo = topology_of(model, "hx")
    (s,) = sites(model, topo, Path("/labs/x/nodes"))
    assert (s.node_ns, s.local_ns, s.far_ns, s.host_ns) == (
        "hx-n-beta",
        "hx-il-hq-branch",
        "hx-ir-hq-branch",
        "hx-ih-hq-branch",
    )
    assert (s.local_addr, s.local_gw) == ("10.20.255.254/30", "10.20.255.253/30")
    assert (s.host_addr, s.host_gw) == ("172.31.255.254/30", "172.31.255.253/30")
    assert (s.remote, s.remote_port, s.far_port, s.local_if) == (
        "192.0.2.254",
        4500,
        "ir-hq-branch",
        "il-hq-branch",
    )
    child = s.tree["children"]["hq-branch"]  # type: ignore[index]
    assert child == {
        "local_ts": ["172.16.0.0/12"],
        "remote_ts": ["10.20.0.0/16"],
        "esp_proposals": ["aes256-sha256-modp2048", "default"],
    }
    assert s.tree["local_addrs"] == ["192.0.2.254"] and s.tree["remote_addrs"] == ["198.51.100.7"]
    assert s.tree["proposals"] == ["aes256-sha256-modp2048", "default"]
    sides = ipsec_far_sides(model, topo, Path("/labs/x/nodes"))
    assert sides == [
        NodeCharons(Path("/labs/x/nodes"), ("hq-branch-psk",), (("beta", "hx-n-beta"),)),
        s,
    ]
    assert far_namespaces(sides) == ("hx-ir-hq-branch", "hx-ih-hq-branch", "hx-il-hq-branch")
    # recorded: deleted by `lab down`, pinged by `lab check`, reached by `lab exec`
    state = LabState("x", "hx", "s", "/labs/x", "/labs/x/keys", "now", apply_dir="/labs/x/nodes")
    record(state, topo, model)
    assert state.namespaces[-3:] == list(far_namespaces(sides))
    ends = [(e.name, e.kind, e.network, e.ns, e.addresses, e.node) for e in state.endpoints]
    assert ends[-2:] == [
        (
            "ipsec:hq-branch:local",
            "enterprise",
            "ipsec:hq-branch",
            "hx-il-hq-branch",
            ["10.20.255.254"],
            "beta",
        ),
        (
            "ipsec:hq-branch:remote",
            "enterprise",
            "ipsec:hq-branch",
            "hx-ih-hq-branch",
            ["172.31.255.254"],
            "beta",
        ),
    ]
    assert {k: v for k, v in state.targets.items() if k.startswith("ipsec:")} == {
        "ipsec:hq-branch:local": "hx-il-hq-branch",
        "ipsec:hq-branch:remote": "hx-ih-hq-branch",
        "ipsec:hq-branch:responder": "hx-ir-hq-branch",
    }
    setup = node_setup("/labs/x/nodes", "beta")
    assert (setup.vici, setup.secrets_file) == (
        "/labs/x/nodes/beta.charon.vici",
        "/labs/x/nodes/ipsec.secrets.yaml",
    )


@pytest.mark.parametrize("ts", ["10.20.0.1/31", "fd00::/64"])
def test_selectors_the_lab_cannot_stand_a_host_in_are_refused(ts: str) -> None:
    model = compile_spec(str(SPEC)).ir
    (hq,) = model.enterprise
    links = tuple(replace(i, remote_ts=(ts,)) for i in hq.ipsec)
    model = replace(model, enterprise=(replace(hq, ipsec=links),))
    with pytest.raises(LabError, match="IPv4 remote_ts of /30 or wider"):
        sites(model, topology_of(model, "hx"), Path("/labs/x/nodes"))
