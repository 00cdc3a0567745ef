#!/bin/sh
# Installs the Debian packages listed in the given files that are not yet
# installed. Quiet when everything is present; never upgrades what is there.
set -eu
here=$(dirname "$0")
[ $# -gt 0 ] || set -- "$here/packages.txt"
for f in "$@"; do
    [ -r "$f" ] || { echo "third_party: cannot read $f" >&2; exit 1; }
done
want=$(cat "$@" | sed 's/#.*//' | tr -s ' \t' '\n\n' | grep -v '^$' | sort -u)
[ -n "$want" ] || { echo "third_party: no packages listed in $*" >&2; exit 1; }
missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "third_party: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "third_party: missing packages:$missing" >&2
        echo "third_party: run as root (or install them yourself): apt-get install$missing" >&2
        exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists when they are absent or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
    $SUDO apt-get update -qq || { echo "third_party: apt-get update failed (no network?)" >&2; exit 1; }
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    echo "third_party: apt-get install failed for:$missing (no network or not Debian 12?)" >&2
    exit 1
fi
