#!/usr/bin/env bash
# Install the Debian packages verconf builds and tests with, if any are missing.
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
set -euo pipefail

packages=(
	build-essential meson ninja-build pkg-config    # build
	libfuse3-dev fuse3                              # the daemon
	libcjson-dev libsqlite3-dev libssl-dev          # cJSON, SQLite, libcrypto
	libzstd-dev                                     # blob compression (store)
	sqlite3 python3 util-linux procps diffutils     # tests and helper scripts
	strace                                          # fs_durability: the daemon's syncs
	vim-tiny nano ed rsync git tmux perl tar coreutils # fs_tools: how people save configs
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "verconf: missing packages; run as root:" >&2
	echo "  apt-get update && $cmd" >&2
	exit 1
fi
echo "verconf: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
