#!/bin/sh
# `make bench`'s entry: a private D-Bus session with an unlocked gnome-keyring (the Secret
# Service mercurial_keyring stores into), in a throw-away HOME, then bench/run.py. When a private
# mount namespace is available, the whole bench runs in one whose /etc/hosts also maps the bench's
# public-cloud vault name (bench/run.py's CLOUD_HOST) to 127.0.0.1: rows that reach the emulator
# under that name measure what a vault under *.vault.azure.net gets, without a DNS query.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
keyring_home=$(mktemp -d)
mkdir -m 700 "$keyring_home/run"
trap 'rm -rf "$keyring_home"' EXIT
cloud_host=hg-keyvault-bench.vault.azure.net
{ cat /etc/hosts; echo "127.0.0.1 $cloud_host"; } > "$keyring_home/hosts"
set -- env HOME="$keyring_home" XDG_DATA_HOME="$keyring_home/share" XDG_RUNTIME_DIR="$keyring_home/run" \
  dbus-run-session -- sh -c '
    # A password for the throw-away login keyring (an empty one makes it prompt); --unlock creates it.
    printf "bench-keyring" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec "$0" "$1"
  ' "$here/../.work/bench/venv/bin/python" "$here/run.py"
if unshare --mount --propagation private true 2>/dev/null; then
  BENCH_CLOUD_HOST=$cloud_host exec unshare --mount --propagation private \
    sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$keyring_home/hosts" "$@"
fi
echo "bench: no private mount namespace here: the rows for a vault at $cloud_host are left out" >&2
exec "$@"
