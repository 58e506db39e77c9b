#!/usr/bin/env bash
# Make Debian's BCC Python module (python3-bpfcc) importable in a virtualenv by
# symlinking /usr/lib/python3/dist-packages/bcc into its site-packages.
# The PyPI package named "bcc" is something else: never pip install it.
#
# Usage: scripts/bcc-venv-link.sh VENV_DIR
set -euo pipefail

venv="${1:?usage: $0 VENV_DIR}"
src="${BCC_PYTHON_MODULE:-/usr/lib/python3/dist-packages/bcc}"

if [ ! -d "$src" ]; then
    echo "bcc-venv-link: $src not found (install python3-bpfcc: scripts/install-debian-packages.sh)" >&2
    exit 1
fi
py="$venv/bin/python"
if [ ! -x "$py" ]; then
    echo "bcc-venv-link: $py not found" >&2
    exit 1
fi
site="$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
dest="$site/bcc"

if [ -L "$dest" ]; then
    [ "$(readlink "$dest")" = "$src" ] && exit 0
    rm -f "$dest"
elif [ -e "$dest" ]; then
    echo "bcc-venv-link: $dest exists and is not our symlink (a pip-installed 'bcc'?)." >&2
    echo "bcc-venv-link: remove it ('$venv/bin/pip uninstall bcc') and rerun." >&2
    exit 1
fi
mkdir -p "$site"
ln -s "$src" "$dest"
