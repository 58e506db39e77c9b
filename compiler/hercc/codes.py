"""Every diagnostic code hercc emits, in one place (docs/diagnostics.md lists them)."""

from __future__ import annotations

# Syntax and structure.
SYNTAX = "E100"  # the text does not parse
UNKNOWN = "E101"  # unknown statement or option
MISSING = "E102"  # a required option is missing
REPEATED = "E103"  # an option given twice where it may appear once
ARGUMENTS = "E104"  # wrong number or kind of arguments
BAD_CIDR = "E110"
BAD_ADDRESS = "E111"
BAD_PORT = "E112"
BAD_VNI = "E113"
BAD_VLAN = "E114"
BAD_DURATION = "E115"
BAD_VALUE = "E116"  # another malformed value: number, name, choice, key
BAD_ENDPOINT = "E117"
BAD_PROPOSAL = "E118"  # an IKE proposal strongSwan would refuse
BAD_CERTIFICATE = "E119"  # an ipsec certificate file charon could not use
INCLUDE_MISSING = "E120"
INCLUDE_CYCLE = "E121"
YAML_SCHEMA = "E130"  # a YAML spec does not match schemas/spec.schema.json

# Names and references.
DUPLICATE = "E200"
UNDEFINED = "E201"
IFNAME_CLASH = "E202"  # two networks of a node cut to one WireGuard interface name
NETNS_CLASH = "E203"  # a network w-X and a workload X of one node: one namespace name

# Addressing.
RANGE_OVERLAP = "E210"
SUBNET_OUTSIDE = "E211"
SUBNET_OVERLAP = "E212"
ADDRESS_OUTSIDE = "E213"
ADDRESS_REUSED = "E214"
SUBNET_EXHAUSTED = "E215"
ADDRESSES_EXHAUSTED = "E216"
SUBNET_SIZE = "E217"  # `subnets` does not fit the range, or a pinned subnet has the wrong size

# Nodes and the underlay.
NAT_ENDPOINT = "E220"
NO_ENDPOINT = "E221"  # neither `endpoint` nor `nat`
ENDPOINT_PORT = "E222"  # endpoint port on a node in several networks
PORT_CLASH = "E223"  # two networks of one node on the same WireGuard port
WRONG_NETWORK = "E224"  # workload network not joined by its node / ambiguous
PUBKEY_REUSED = "E225"  # two nodes pinned to one public key
ENDPOINT_REUSED = "E226"  # two nodes dialled at one address and port
ENDPOINT_IN_OVERLAY = "E227"  # an endpoint inside an overlay range
NAT_RELAY = "E228"  # `relay on` on a nat node
LINK_SELF = "E240"
LINK_NAT_PAIR = "E241"  # a link between two nat nodes: neither can be dialled
ISOLATED = "E242"  # a node with no underlay path to any other
LINK_DUPLICATE = "E243"
NO_PATH = "E244"  # two nodes of a network with no overlay path between them

# Gateways and services.
EXPOSED_TWICE = "E230"
TUNNEL_POOL_OVERLAP = "E231"  # a network range overlaps the gateway tunnel pool
NAME_OUTSIDE_ZONES = "E232"  # an exposed host name under no `dns` zone
TUNNEL_FAMILY = "E233"  # no address family shared by a workload and its gateway's tunnel
NOT_LISTENING = "E234"  # https (443) or http (80) exposed on a gateway that does not listen there
TUNNEL_NETWORKS = "E235"  # one node exposes workloads of two networks through one gateway

# Warnings: reported, and the build goes on.
REPLICAS_ONE_NODE = "W300"  # every replica of a service on one node
NO_ZONE_FILE = "W301"  # a dns zone that gets no zone file: no nameserver, or one inside it

ALL: dict[str, str] = {
    SYNTAX: "syntax error",
    UNKNOWN: "unknown statement or option",
    MISSING: "required option missing",
    REPEATED: "option given more than once",
    ARGUMENTS: "wrong number or kind of arguments",
    BAD_CIDR: "invalid CIDR",
    BAD_ADDRESS: "invalid IP address",
    BAD_PORT: "invalid port",
    BAD_VNI: "invalid VXLAN VNI (1..16777215)",
    BAD_VLAN: "invalid VLAN id (1..4094)",
    BAD_DURATION: "invalid duration",
    BAD_VALUE: "invalid value",
    BAD_ENDPOINT: "invalid endpoint",
    BAD_PROPOSAL: "invalid IPsec proposal",
    BAD_CERTIFICATE: "unusable IPsec certificate file",
    INCLUDE_MISSING: "included file cannot be read",
    INCLUDE_CYCLE: "include cycle",
    YAML_SCHEMA: "YAML spec does not match the schema",
    DUPLICATE: "duplicate name",
    UNDEFINED: "undefined reference",
    IFNAME_CLASH: "two networks get one interface name",
    NETNS_CLASH: "a network and a workload get one namespace",
    RANGE_OVERLAP: "overlapping network ranges",
    SUBNET_OUTSIDE: "pinned subnet outside its network",
    SUBNET_OVERLAP: "pinned subnet overlaps another",
    ADDRESS_OUTSIDE: "workload address outside its node's subnet",
    ADDRESS_REUSED: "address used twice",
    SUBNET_EXHAUSTED: "network range has no free subnet",
    ADDRESSES_EXHAUSTED: "node subnet has no free address",
    SUBNET_SIZE: "subnet size does not fit",
    NAT_ENDPOINT: "nat node with an endpoint",
    NO_ENDPOINT: "node has neither endpoint nor nat",
    ENDPOINT_PORT: "endpoint port on a node in several networks",
    PORT_CLASH: "two networks of one node on the same WireGuard port",
    WRONG_NETWORK: "workload network not joined by its node",
    PUBKEY_REUSED: "public key pinned on two nodes",
    ENDPOINT_REUSED: "two nodes at one endpoint",
    ENDPOINT_IN_OVERLAY: "endpoint inside an overlay range",
    NAT_RELAY: "relay on a nat node",
    EXPOSED_TWICE: "port or hostname exposed twice on one gateway",
    TUNNEL_POOL_OVERLAP: "network range overlaps the gateway tunnel pool",
    NAME_OUTSIDE_ZONES: "exposed name outside every dns zone",
    TUNNEL_FAMILY: "no tunnel address family for a workload",
    NOT_LISTENING: "gateway does not listen on the port of an exposed protocol",
    TUNNEL_NETWORKS: "one node exposes workloads of two networks through one gateway",
    REPLICAS_ONE_NODE: "every replica of a service on one node (warning)",
    NO_ZONE_FILE: "dns zone without a usable nameserver gets no zone file (warning)",
    LINK_SELF: "link names one node twice",
    LINK_NAT_PAIR: "link between two nat nodes",
    ISOLATED: "node has no underlay path to any other",
    LINK_DUPLICATE: "link given twice",
    NO_PATH: "no overlay path between two nodes",
}
