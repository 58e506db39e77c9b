"""Benchmark: a 1,000-node full WireGuard mesh, hercc vs wg-meshconf.

The same nodes, keys and endpoints go to both: `hercc build --backend
wireguard` (wg setconf files, 999 peers each) and wg-meshconf's `genconfig`
(one wg-quick file per node). wg-meshconf is installed with pip into
bench/.venv-peers on first use. Prints wall time and peak RSS of each, and the
ratio. Targets on this machine: hercc at least 10x faster, under 3 s, peak
RSS under 1 GiB.

    python bench/mesh_vs_wgmeshconf.py [--nodes 1000]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meshgen import endpoint, mesh_spec
from runner import hercc, measure

PEERS_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv-peers")
COLUMNS = ["Name", "Address", "Endpoint", "AllowedIPs", "ListenPort", "PersistentKeepalive",
           "FwMark", "PrivateKey", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown",
           "PostDown", "SaveConfig"]  # fmt: skip


def wg_meshconf() -> str:
    exe = os.path.join(PEERS_VENV, "bin", "wg-meshconf")
    if not os.path.exists(exe):
        subprocess.run([sys.executable, "-m", "venv", PEERS_VENV], check=True)
        pip = os.path.join(PEERS_VENV, "bin", "pip")
        subprocess.run([pip, "install", "-q", "wg-meshconf==2.5.1"], check=True)
    return exe


def write_database(path: str, privates: list[str]) -> None:
    """wg-meshconf's CSV database for the same nodes hercc compiles."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, COLUMNS, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        for i, private in enumerate(privates):
            row = dict.fromkeys(COLUMNS, "")
            row.update(
                Name=f"n{i:05d}",
                Address=f"10.{i // 256}.{i % 256}.1/24",
                Endpoint=endpoint(i),
                ListenPort="51820",
                PrivateKey=private,
            )
            writer.writerow(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    args = parser.parse_args()
    peers_tool = wg_meshconf()
    with tempfile.TemporaryDirectory() as tmp:
        text, privates = mesh_spec(args.nodes)
        spec = os.path.join(tmp, "mesh.herc")
        with open(spec, "w", encoding="utf-8") as fh:
            fh.write(text)
        db = os.path.join(tmp, "database.csv")
        write_database(db, privates)
        out = os.path.join(tmp, "hercc-out")
        ours = measure([*hercc(), "build", spec, "-o", out, "--backend", "wireguard"])
        theirs = measure([peers_tool, "-d", db, "genconfig", "-o", os.path.join(tmp, "meshconf")])
        with open(os.path.join(out, "nodes/n00001/wireguard/mesh.conf"), encoding="utf-8") as fh:
            peers = sum(1 for line in fh if line.startswith("[Peer]"))
    print(f"{args.nodes}-node full mesh, {peers} peers per node")
    print(f"{'tool':<12} {'wall s':>8} {'peak RSS MiB':>13}")
    print(f"{'hercc':<12} {ours[0]:>8.2f} {ours[1]:>13.1f}")
    print(f"{'wg-meshconf':<12} {theirs[0]:>8.2f} {theirs[1]:>13.1f}")
    ratio = theirs[0] / ours[0]
    print(f"speed ratio (wg-meshconf / hercc): {ratio:.1f}x  (target >= 10x)")
    print(f"hercc under 3 s: {'yes' if ours[0] < 3 else 'NO'}; "
          f"peak RSS under 1 GiB: {'yes' if ours[1] < 1024 else 'NO'}")  # fmt: skip


if __name__ == "__main__":
    main()
