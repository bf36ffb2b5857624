#!/bin/sh
# `make bench`'s entry: a private D-Bus session with an unlocked gnome-keyring (the Secret
# Service mercurial_keyring stores into), in a throw-away HOME, then bench/run.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
keyring_home=$(mktemp -d)
mkdir -m 700 "$keyring_home/run"
trap 'rm -rf "$keyring_home"' EXIT
env HOME="$keyring_home" XDG_DATA_HOME="$keyring_home/share" XDG_RUNTIME_DIR="$keyring_home/run" \
  dbus-run-session -- sh -c '
    # A password for the throw-away login keyring (an empty one makes it prompt); --unlock creates it.
    printf "bench-keyring" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec "$0" "$1"
  ' "$here/../.work/bench/venv/bin/python" "$here/run.py"
