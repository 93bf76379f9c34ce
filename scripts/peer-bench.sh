#!/usr/bin/env bash
# peer-bench.sh runs the peer comparison (bench/peer): kvhost on SQLite,
# with and without its host read cache, against a one-member etcd (and a
# Redis, for reference) on this machine, all on loopback, interleaved, and
# prints a markdown table. Arguments go to the program:
#
#   scripts/peer-bench.sh                              # print the table
#   scripts/peer-bench.sh -write docs/PERFORMANCE.md   # and put it in the doc
#   scripts/peer-bench.sh -rounds 3 -duration 2s       # shorter
#   scripts/peer-bench.sh -profile /tmp/peer-prof      # CPU profiles too
#
# It installs Debian's etcd-server (and redis-server) with apt-get when
# etcd (redis-server) is not on PATH, builds kvhost (make build) and the
# program, and runs it. Not part of make test or make bench: it takes
# about two minutes and reads best on an otherwise quiet machine (the
# table says the load average it ran at).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "peer-bench: $*" >&2; }

apt_updated=
apt_install() {
	if [ "$(id -u)" != 0 ]; then
		say "cannot install $* without root: install it, or put it on PATH"
		return 1
	fi
	if [ -z "$apt_updated" ]; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		apt_updated=1
	fi
	say "apt-get install $*"
	# The packages' own services are not wanted: the program starts its
	# servers on temporary ports and data. Where no init system runs,
	# their start is refused anyway.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

command -v etcd >/dev/null || apt_install etcd-server
command -v redis-server >/dev/null || apt_install redis-server ||
	say "no redis-server: the table will have no Redis column"

say "make build"
make -s build >&2
mkdir -p bin
say "building bench/peer"
go -C bench/peer build -o ../../bin/peer-bench .
bin/peer-bench -kvhost bin/kvhost "$@"
