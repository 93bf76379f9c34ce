#!/usr/bin/env bash
# services.sh makes the servers the tests need available on loopback and
# prints, on stdout, the environment that points the tests at them:
#
#   eval "$(scripts/services.sh)"
#
# For each of PostgreSQL and Redis: one already listening on loopback is
# used as it is; otherwise Debian's package is installed with apt-get (if
# missing) and started. What it does is said on stderr. With CI=true a
# server that cannot be had is a failure (exit 1); otherwise the tests
# that need it skip, loudly.
#
# The tests find the servers through:
#   KVHOST_TEST_POSTGRES_DSN   postgres://kvhost:kvhost@127.0.0.1:5432/kvhost_test
#   KVHOST_TEST_REDIS_ADDR     127.0.0.1:6379
set -uo pipefail

say() { echo "services: $*" >&2; }
failed=0

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		say "cannot install $* without root"
		return 1
	fi
	if [ -z "${APT_UPDATED:-}" ]; then
		say "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
		APT_UPDATED=1
	fi
	say "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

PG_HOST=127.0.0.1 PG_PORT=${KVHOST_PG_PORT:-5432}
PG_USER=kvhost PG_PASSWORD=kvhost PG_DB=kvhost_test

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

postgres() {
	if ! pg_up; then
		if ! command -v pg_ctlcluster >/dev/null; then
			apt_install postgresql || return 1
		fi
		local version
		version=$(ls /usr/lib/postgresql | sort -V | tail -1)
		if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
			say "creating PostgreSQL $version cluster main"
			pg_createcluster "$version" main >&2 || return 1
		fi
		say "starting PostgreSQL $version cluster main on port $PG_PORT"
		pg_ctlcluster "$version" main start >&2 || return 1
		for _ in $(seq 1 100); do pg_up && break; sleep 0.1; done
		pg_up || { say "PostgreSQL did not come up"; return 1; }
	else
		say "PostgreSQL already listening on $PG_HOST:$PG_PORT"
	fi
	# The role and database the tests use; created once, as the server's
	# superuser (peer authentication as the postgres OS user, when we can).
	if ! PGPASSWORD=$PG_PASSWORD psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -qtAc 'select 1' >/dev/null 2>&1; then
		local su=(psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA)
		if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
			su=(runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA)
		fi
		say "creating role $PG_USER and database $PG_DB"
		"${su[@]}" -c "do \$\$ begin if not exists (select from pg_roles where rolname = '$PG_USER') then create role $PG_USER login password '$PG_PASSWORD'; end if; end \$\$" >&2 || return 1
		if [ "$("${su[@]}" -c "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]; then
			"${su[@]}" -c "create database $PG_DB owner $PG_USER" >&2 || return 1
		fi
	fi
	echo "export KVHOST_TEST_POSTGRES_DSN=postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
}

REDIS_ADDR=127.0.0.1:${KVHOST_REDIS_PORT:-6379}

redis_up() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p "${REDIS_ADDR##*:}" ping 2>/dev/null)" = PONG ]; }

redis() {
	if ! redis_up; then
		if ! command -v redis-server >/dev/null; then
			apt_install redis-server || return 1
		fi
		say "starting redis-server on $REDIS_ADDR without persistence"
		redis-server --bind 127.0.0.1 --port "${REDIS_ADDR##*:}" --save '' --appendonly no --daemonize yes >&2 || return 1
		for _ in $(seq 1 100); do redis_up && break; sleep 0.1; done
		redis_up || { say "Redis did not come up"; return 1; }
	else
		say "Redis already listening on $REDIS_ADDR"
	fi
	echo "export KVHOST_TEST_REDIS_ADDR=$REDIS_ADDR"
}

for service in postgres redis; do
	if ! $service; then
		if [ "${CI:-}" = true ]; then
			say "FAILED to provide $service, and CI=true: the tests that need it would not run"
			failed=1
		else
			say "WARNING: no $service: the tests that need it will skip"
		fi
	fi
done
exit $failed
