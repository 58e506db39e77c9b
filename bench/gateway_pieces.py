"""The lab pieces of bench/gateway_vs_ssh.py: the spec, and the configs of nginx and sshd.

SPEC is the hercc spec the gateway's configs are compiled from. One workload
serves three services, because a service has one port and one protocol on it:
plain HTTP on 80 (exposed `http` and `tcp 8080`), TLS on 443 (exposed
`https`, SNI passthrough) and iperf3 on 5201 (exposed `tcp 5201`). The lab's
addresses are the spec's own, so the rendered files are used as they are.
"""

from __future__ import annotations

import os

from gateway_lab import _run

HOST = "web.bench.test"
GATEWAY = "gw1"
NODE = "web1"
PUBLIC = "203.0.113.1"  # the gateway's address in the spec, on its Internet side
CLIENT = "203.0.113.2"
UNDERLAY_GW = "192.0.2.1"  # the gateway and the node on the network the tunnel runs over
UNDERLAY_NODE = "192.0.2.2"
DIRECT_CLIENT = "198.18.0.1"  # a veth from the client straight to the node, for "direct"
DIRECT_NODE = "198.18.0.2"
SSH_PORT = 2222
SSH_HTTP = 9080  # ssh -R's ports on the gateway
SSH_BULK = 9201
IPERF = 5201

SPEC = f"""\
network bench {{ range 10.20.0.0/16 }}

node {NODE} {{
  network bench
  nat
}}

workload web {{ node {NODE} }}

gateway {GATEWAY} {{ address {PUBLIC} }}

service site {{
  workload web
  port     80
  expose   http "{HOST}" via {GATEWAY}
  expose   tcp 8080 via {GATEWAY}
  health   http "/" every 5s
}}

service tls {{
  workload web
  port     443
  expose   https "{HOST}" via {GATEWAY}
}}

service bulk {{
  workload web
  port     {IPERF}
  expose   tcp {IPERF} via {GATEWAY}
}}
"""


def nginx_conf(workdir: str, workers: int) -> str:
    """A static server: keep-alive on, access log off, one worker per core."""
    www = os.path.join(workdir, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w", encoding="utf-8") as fh:
        fh.write("<!doctype html><title>bench</title>" + "x" * 512 + "\n")
    key, cert = os.path.join(workdir, "tls.key"), os.path.join(workdir, "tls.crt")
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
          "-keyout", key, "-out", cert])  # fmt: skip
    temp = os.path.join(workdir, "nginx-temp")
    temps = "".join(
        f"    {kind}_temp_path {temp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
user root;
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
{temps}    server {{
        listen 80 reuseport backlog=4096;
        listen 443 ssl reuseport backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {www};
    }}
}}
"""


def sshd_conf(workdir: str) -> tuple[str, list[str]]:
    """sshd's config in the gateway, and the node's `ssh -N -R` command line."""
    host_key, client_key = os.path.join(workdir, "ssh_host_key"), os.path.join(workdir, "id")
    for path in (host_key, client_key):
        if not os.path.exists(path):  # the keys of the first round serve the next ones
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path])
    with open(client_key + ".pub", encoding="utf-8") as src:
        authorized = src.read()
    with open(os.path.join(workdir, "authorized_keys"), "w", encoding="utf-8") as fh:
        fh.write(authorized)
    conf = f"""\
Port {SSH_PORT}
ListenAddress {UNDERLAY_GW}
HostKey {host_key}
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts clientspecified
"""
    ssh = ["ssh", "-N", "-F", "none", "-i", client_key, "-p", str(SSH_PORT),
           "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", f"UserKnownHostsFile={workdir}/known_hosts", "-o", "ExitOnForwardFailure=yes",
           "-R", f"{PUBLIC}:{SSH_HTTP}:127.0.0.1:80",
           "-R", f"{PUBLIC}:{SSH_BULK}:127.0.0.1:{IPERF}",
           f"root@{UNDERLAY_GW}"]  # fmt: skip
    return conf, ssh
