#!/usr/bin/env bash
# demo.sh runs the demo: a Consul dev agent on 127.0.0.1:8500, three php-fpm
# masters of its own on 127.0.0.2, .3 and .4 port 9000 serving
# deploy/app/public, each registered in Consul as service demo-php with a
# TCP check (`consul services register`), and bin/fcgigate on
# 127.0.0.1:8080 discovering them (see deploy/demo.toml), with its admin
# listener on 127.0.0.1:8081 and its own registration in Consul. It stops
# them all on Ctrl-C, SIGTERM or when one exits, signalling only the
# processes it started. Run it with `make demo`, which installs the
# packages and builds bin/fcgigate and bin/consul first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FPM_HOSTS=(127.0.0.2 127.0.0.3 127.0.0.4) FPM_PORT=9000
GW_HOST=127.0.0.1 GW_PORT=8080 ADMIN_PORT=8081
CONSUL_HOST=127.0.0.1 CONSUL_PORT=8500
SERVICE=demo-php # the Consul service of the FPM pools; deploy/demo.toml discovers it
DOCROOT=$ROOT/deploy/app/public
CONFIG=deploy/demo.toml
GATEWAY=${FCGIGATE_BIN:-bin/fcgigate} # FCGIGATE_BIN: another gateway binary
CONSUL=${FCGIGATE_CONSUL:-bin/consul}  # FCGIGATE_CONSUL: another consul binary
START_TIMEOUT=10 # seconds each process gets to accept connections

log() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
export FCGIGATE_ROOT=$ROOT # deploy/demo.toml builds its docroot from it

fpm=$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v php-fpm8.2 || PATH="$PATH:/usr/sbin" command -v php-fpm) ||
	die "php-fpm not found; run scripts/deps.sh (or make demo)"
[ -x "$GATEWAY" ] || die "$GATEWAY not found; run make build (or make demo)"
[ -x "$CONSUL" ] || die "$CONSUL not found; run make consul (or make demo)"
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
for host in "${FPM_HOSTS[@]}"; do in_use "$host" "$FPM_PORT"; done
in_use "$GW_HOST" "$GW_PORT"
in_use "$GW_HOST" "$ADMIN_PORT"
in_use "$CONSUL_HOST" "$CONSUL_PORT"

STATE=$(mktemp -d "${TMPDIR:-/tmp}/fcgigate-demo.XXXXXX")
FPM_PIDS=() GW_PID="" CONSUL_PID=""

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
	# The gateway first: it deregisters from Consul as it stops.
	if [ -n "$GW_PID" ]; then
		stop "$GW_PID" fcgigate 10 || true
	fi
	local pid
	for pid in "${FPM_PIDS[@]}"; do
		# On SIGTERM php-fpm ends its workers itself. Workers outlive a
		# SIGKILLed master, so then they are ended through its process
		# group: php-fpm calls setsid(), making its PID the group id.
		if ! stop "$pid" php-fpm 5; then
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
	done
	if [ -n "$CONSUL_PID" ]; then
		stop "$CONSUL_PID" consul 10 || true
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

# Consul: a dev agent (state in memory) on 127.0.0.1; DNS, gRPC and WAN off.
log "starting consul on $CONSUL_HOST:$CONSUL_PORT (log $STATE/consul.log)"
"$CONSUL" agent -dev -bind "$CONSUL_HOST" -client "$CONSUL_HOST" -node fcgigate-demo \
	-hcl "ports { http = $CONSUL_PORT dns = -1 grpc = -1 grpc_tls = -1 serf_wan = -1 }" \
	-hcl 'disable_update_check = true' >>"$STATE/consul.log" 2>&1 &
CONSUL_PID=$!
await consul "$CONSUL_PID" "$CONSUL_HOST" "$CONSUL_PORT" "$STATE/consul.log"
export CONSUL_HTTP_ADDR=$CONSUL_HOST:$CONSUL_PORT # for the consul CLI below

# php-fpm: one master per address, each with its configuration, logs and
# request counter in $STATE/fpm-HOST.
cat >"$STATE/php.ini" <<EOF
display_errors = Off
log_errors = On
error_reporting = E_ALL
output_buffering = 0
expose_php = Off
register_argc_argv = Off
date.timezone = UTC
EOF

# start_fpm HOST: starts a master on HOST:FPM_PORT and waits for it.
start_fpm() {
	local host=$1 dir=$STATE/fpm-$1 pid
	mkdir -p "$dir"
	cat >"$dir/php-fpm.conf" <<EOF
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
log_level = notice
daemonize = no

[demo]
listen = $host:$FPM_PORT
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
env[FCGIGATE_DEMO_STATE] = $dir
env[FCGIGATE_FPM_ADDR] = $host:$FPM_PORT
EOF
	if [ "$(id -u)" -eq 0 ]; then
		printf 'user = root\ngroup = root\n' >>"$dir/php-fpm.conf"
	fi
	log "starting php-fpm on $host:$FPM_PORT (log $dir/php-fpm.log)"
	"$fpm" --nodaemonize --allow-to-run-as-root -c "$STATE/php.ini" --fpm-config "$dir/php-fpm.conf" \
		>>"$dir/php-fpm.log" 2>&1 &
	pid=$!
	FPM_PIDS+=("$pid")
	await php-fpm "$pid" "$host" "$FPM_PORT" "$dir/php-fpm.log"
}

# register_fpm HOST: registers HOST's pool in Consul, as the agent of an FPM
# node would, with a TCP check (FPM speaks FastCGI, not HTTP).
register_fpm() {
	local host=$1 def=$STATE/fpm-$1/service.hcl
	cat >"$def" <<EOF
service {
  name    = "$SERVICE"
  id      = "$SERVICE-$host"
  address = "$host"
  port    = $FPM_PORT
  tags    = ["php82"]
  check {
    id       = "$SERVICE-$host-tcp"
    name     = "php-fpm accepts connections"
    tcp      = "$host:$FPM_PORT"
    interval = "2s"
    timeout  = "1s"
  }
}
EOF
	"$CONSUL" services register "$def" >/dev/null || die "consul services register $def failed"
	log "registered $host:$FPM_PORT in Consul as $SERVICE-$host ($def)"
}

for host in "${FPM_HOSTS[@]}"; do
	start_fpm "$host"
	register_fpm "$host"
done

log "starting fcgigate: $GATEWAY serve -config $CONFIG"
"$GATEWAY" serve -config "$CONFIG" &
GW_PID=$!
await fcgigate "$GW_PID" "$GW_HOST" "$GW_PORT"

log "ready: http://$GW_HOST:$GW_PORT/   (Ctrl-C to stop)"
log "the pool follows the passing instances of $SERVICE in Consul (UI: http://$CONSUL_HOST:$CONSUL_PORT/ui/); try"
log "  CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR $CONSUL services deregister -id $SERVICE-127.0.0.3"
log "  CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR $CONSUL services register $STATE/fpm-127.0.0.3/service.hcl"

# Until one of them exits or a signal arrives.
status=0
wait -n "$CONSUL_PID" "${FPM_PIDS[@]}" "$GW_PID" || status=$?
if ! kill -0 "$CONSUL_PID" 2>/dev/null; then
	log "consul exited; its log:"
	tail -n 20 "$STATE/consul.log" >&2
elif ! kill -0 "$GW_PID" 2>/dev/null; then
	log "fcgigate exited (status $status)"
else
	for i in "${!FPM_PIDS[@]}"; do
		if ! kill -0 "${FPM_PIDS[$i]}" 2>/dev/null; then
			log "php-fpm on ${FPM_HOSTS[$i]} exited; its log:"
			tail -n 20 "$STATE/fpm-${FPM_HOSTS[$i]}/php-fpm.log" >&2
		fi
	done
fi
exit 1
