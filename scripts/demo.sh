#!/usr/bin/env bash
# demo.sh runs the demo: a php-fpm master of its own on 127.0.0.2:9000 serving
# deploy/app/public, and bin/fcgigate in front of it on 127.0.0.1:8080 (see
# deploy/demo.toml). It stops both on Ctrl-C, SIGTERM or when either exits,
# signalling only the processes it started. Run it with `make demo`, which
# installs the packages and builds bin/fcgigate first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FPM_HOST=127.0.0.2 FPM_PORT=9000
GW_HOST=127.0.0.1 GW_PORT=8080
DOCROOT=$ROOT/deploy/app/public
CONFIG=deploy/demo.toml
GATEWAY=${FCGIGATE_BIN:-bin/fcgigate} # FCGIGATE_BIN: another gateway binary
START_TIMEOUT=10 # seconds each process gets to accept connections

log() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
export FCGIGATE_ROOT=$ROOT # deploy/demo.toml builds its docroot from it

fpm=$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v php-fpm8.2 || PATH="$PATH:/usr/sbin" command -v php-fpm) ||
	die "php-fpm not found; run scripts/deps.sh (or make demo)"
[ -x "$GATEWAY" ] || die "$GATEWAY not found; run make build (or make demo)"
[ -f "$CONFIG" ] || die "$CONFIG not found"
[ -d "$DOCROOT" ] || die "$DOCROOT not found"

# accepting HOST PORT: does something accept TCP connections there?
accepting() {
	# shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
	timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}
in_use() {
	if accepting "$1" "$2"; then
		die "$1:$2 is already in use (see: ss -ltnp 'sport = :$2'); stop whatever listens there and retry"
	fi
}
in_use "$FPM_HOST" "$FPM_PORT"
in_use "$GW_HOST" "$GW_PORT"

STATE=$(mktemp -d "${TMPDIR:-/tmp}/fcgigate-demo.XXXXXX")
FPM_PID="" GW_PID=""

# shellcheck disable=SC2317 # stop and cleanup run from the traps
# stop PID NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL. Returns 1
# if it had to use SIGKILL.
stop() {
	local pid=$1 name=$2 i killed=0
	kill -0 "$pid" 2>/dev/null || return 0
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < $3 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) ignored SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		killed=1
	fi
	wait "$pid" 2>/dev/null || true
	return "$killed"
}

# shellcheck disable=SC2317
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$GW_PID" ]; then
		stop "$GW_PID" fcgigate 10 || true
	fi
	if [ -n "$FPM_PID" ]; then
		# On SIGTERM php-fpm ends its workers itself. Workers outlive a
		# SIGKILLed master, so then they are ended through its process
		# group: php-fpm calls setsid(), making its PID the group id.
		if ! stop "$FPM_PID" php-fpm 5; then
			kill -KILL -- "-$FPM_PID" 2>/dev/null || true
		fi
	fi
	rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# await NAME PID HOST PORT [LOGFILE]: polls with capped backoff until HOST:PORT
# accepts connections, failing if PID exits first or START_TIMEOUT passes.
await() {
	local name=$1 pid=$2 host=$3 port=$4 logfile=${5:-} delay=0.02
	local deadline=$((SECONDS + START_TIMEOUT))
	until accepting "$host" "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			[ -n "$logfile" ] && cat "$logfile" >&2
			die "$name exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			[ -n "$logfile" ] && cat "$logfile" >&2
			die "$name not accepting on $host:$port after ${START_TIMEOUT}s"
		fi
		sleep "$delay"
		delay=$(awk -v d="$delay" 'BEGIN { d *= 2; print (d > 0.5 ? 0.5 : d) }')
	done
}

# php-fpm: our own master, configuration and logs in $STATE.
cat >"$STATE/php.ini" <<EOF
display_errors = Off
log_errors = On
error_reporting = E_ALL
output_buffering = 0
expose_php = Off
register_argc_argv = Off
date.timezone = UTC
EOF
cat >"$STATE/php-fpm.conf" <<EOF
[global]
pid = $STATE/php-fpm.pid
error_log = $STATE/php-fpm.log
log_level = notice
daemonize = no

[demo]
listen = $FPM_HOST:$FPM_PORT
pm = static
pm.max_children = 4
chdir = $DOCROOT
ping.path = /fpm-ping
ping.response = pong
pm.status_path = /fpm-status
catch_workers_output = yes
decorate_workers_output = no
clear_env = yes
security.limit_extensions = .php
env[FCGIGATE_DEMO_STATE] = $STATE
env[FCGIGATE_FPM_ADDR] = $FPM_HOST:$FPM_PORT
EOF
if [ "$(id -u)" -eq 0 ]; then
	printf 'user = root\ngroup = root\n' >>"$STATE/php-fpm.conf"
fi

log "starting php-fpm on $FPM_HOST:$FPM_PORT (docroot $DOCROOT, log $STATE/php-fpm.log)"
"$fpm" --nodaemonize --allow-to-run-as-root -c "$STATE/php.ini" --fpm-config "$STATE/php-fpm.conf" \
	>>"$STATE/php-fpm.log" 2>&1 &
FPM_PID=$!
await php-fpm "$FPM_PID" "$FPM_HOST" "$FPM_PORT" "$STATE/php-fpm.log"

log "starting fcgigate: $GATEWAY serve -config $CONFIG"
"$GATEWAY" serve -config "$CONFIG" &
GW_PID=$!
await fcgigate "$GW_PID" "$GW_HOST" "$GW_PORT"

log "ready: http://$GW_HOST:$GW_PORT/   (Ctrl-C to stop)"

# Until one of them exits or a signal arrives.
status=0
wait -n "$FPM_PID" "$GW_PID" || status=$?
if ! kill -0 "$FPM_PID" 2>/dev/null; then
	log "php-fpm exited; its log:"
	tail -n 20 "$STATE/php-fpm.log" >&2
elif ! kill -0 "$GW_PID" 2>/dev/null; then
	log "fcgigate exited (status $status)"
fi
exit 1
