#!/usr/bin/env bash
# Install the Debian packages Hercules needs (scripts/debian-packages.txt) and
# prepare a merged kernel-header tree for BCC.
#
# Idempotent and cheap when nothing changed: apt-get update + install only run
# when a listed package is not installed (dpkg-query) or the stamp for the
# current package list is missing.  No service is started by the install.
#
# Usage: scripts/install-debian-packages.sh [STAMP_DIR]   (default: <repo>/.venv)
# Env:   HERCULES_KERNEL_HEADERS  merged header tree (default /var/cache/hercules/kernel-headers)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
list_file="$here/debian-packages.txt"
stamp_dir="${1:-$repo/.venv}"
kh="${HERCULES_KERNEL_HEADERS:-/var/cache/hercules/kernel-headers}"

log() { printf 'install-debian-packages: %s\n' "$*" >&2; }

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list_file" | grep -v '^$')
list_sha="$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)"
stamp="$stamp_dir/.debs-$list_sha"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        log "not root and no sudo: cannot install packages"; fi
fi

missing_packages() {
    local p status
    for p in "${packages[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
        [ "$status" = installed ] || printf '%s\n' "$p"
    done
}

# ---------------------------------------------------------------- packages
mapfile -t missing < <(missing_packages)
if [ -f "$stamp" ] && [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#packages[@]} packages installed (stamp $stamp)"
else
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        # Keep services from starting while packages are installed: a
        # policy-rc.d returning 101 makes invoke-rc.d / deb-systemd-invoke skip
        # starts.  Any existing policy-rc.d is put back afterwards.
        prc=/usr/sbin/policy-rc.d
        backup=""
        if [ -e "$prc" ]; then
            backup="$(mktemp /tmp/policy-rc.d.XXXXXX)"
            "${SUDO[@]}" cp -p "$prc" "$backup"
        fi
        restore_policy() {
            if [ -n "$backup" ]; then
                "${SUDO[@]}" cp -p "$backup" "$prc" && rm -f "$backup"
            else
                "${SUDO[@]}" rm -f "$prc"
            fi
        }
        trap restore_policy EXIT
        printf '#!/bin/sh\n# written by hercules scripts/install-debian-packages.sh\nexit 101\n' \
            | "${SUDO[@]}" tee "$prc" >/dev/null
        "${SUDO[@]}" chmod 755 "$prc"

        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${packages[@]}" </dev/null

        restore_policy
        trap - EXIT

        mapfile -t still < <(missing_packages)
        if [ "${#still[@]}" -gt 0 ]; then
            log "still not installed: ${still[*]}"
            exit 1
        fi
    else
        log "all ${#packages[@]} packages already installed"
    fi
    # Belt and braces: should a package have started the IPsec daemon anyway
    # (e.g. systemd ignoring policy-rc.d), stop it again.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl stop strongswan.service strongswan-starter.service \
            iperf3.service >/dev/null 2>&1 || true
    fi
    mkdir -p "$stamp_dir"
    rm -f "$stamp_dir"/.debs-*
    : > "$stamp"
fi

# ---------------------------------------------------------- kernel headers
# Debian splits linux-headers-<ver>-amd64 into a -common tree and an -amd64
# tree; BCC (BCC_KERNEL_SOURCE) takes one directory, so merge them with
# symlinks.  Rebuilt only when the newest installed header version changes.
common="$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$common" ]; then
    log "no /usr/src/linux-headers-*-common tree: cannot prepare $kh"
    exit 1
fi
arch_tree="${common%-common}-amd64"
if [ ! -d "$arch_tree" ]; then
    log "missing $arch_tree (for $common)"
    exit 1
fi
want="$common + $arch_tree"
marker="$kh/.hercules-merged-from"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    log "kernel headers ready at $kh ($(basename "$arch_tree"))"
else
    log "merging $common and $arch_tree into $kh"
    parent="$(dirname "$kh")"
    "${SUDO[@]}" mkdir -p "$parent"
    tmp="$("${SUDO[@]}" mktemp -d "$parent/.kernel-headers.XXXXXX")"
    "${SUDO[@]}" cp -as "$common/." "$tmp/"
    "${SUDO[@]}" cp -as --remove-destination "$arch_tree/arch" "$arch_tree/include" "$tmp/"
    printf '%s\n' "$want" | "${SUDO[@]}" tee "$tmp/.hercules-merged-from" >/dev/null
    "${SUDO[@]}" chmod 755 "$tmp"
    "${SUDO[@]}" rm -rf "$kh"
    "${SUDO[@]}" mv "$tmp" "$kh"
fi
