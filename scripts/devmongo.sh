#!/usr/bin/env bash
# The dev/CI MongoDB-wire server: bin/aigw-devmongo (FerretDB over SQLite,
# behind a proxy that runs commands on one document one at a time, and
# commands that may touch many documents alone, so that conditional updates
# are linearizable). Never for production.
#
#   scripts/devmongo.sh start    # build if needed, start, wait until it answers
#   scripts/devmongo.sh stop     # SIGTERM, wait for a clean exit
#   scripts/devmongo.sh status   # exit 1 unless running and answering
#
# It listens on 127.0.0.1:$AIGW_DEVMONGO_PORT (default 27018) and keeps its
# data in .aigw/ferretdb, its pid and log in .aigw/devmongo.{pid,log}. start
# is idempotent, and restarts a running server whose binary it had to rebuild.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${AIGW_DEVMONGO_PORT:-27018}"
READY_TIMEOUT="${AIGW_DEVMONGO_READY_TIMEOUT:-30}"
ADDR="127.0.0.1:$PORT"
STATE="$ROOT/.aigw"
DATA="$STATE/ferretdb"
PIDFILE="$STATE/devmongo.pid"
LOGFILE="$STATE/devmongo.log"
BIN="$ROOT/bin/aigw-devmongo"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

log() { printf 'devmongo: %s\n' "$*"; }
die() {
	printf 'devmongo: error: %s\n' "$*" >&2
	exit 1
}

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
	die "AIGW_DEVMONGO_PORT=$PORT is not a port"
fi
[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "AIGW_DEVMONGO_READY_TIMEOUT=$READY_TIMEOUT: want whole seconds"

# stale: the binary is missing or older than a source of the tools module.
stale() {
	[[ -x "$BIN" ]] || return 0
	[[ -n "$(find "$ROOT/tools" \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) \
		-newer "$BIN" -print -quit)" ]]
}

# build rebuilds the binary when stale; status 0 when it did.
build() {
	stale || return 1
	command -v go >/dev/null || die "go is not installed; it is needed to build $BIN"
	log "building bin/aigw-devmongo (the first build takes a few minutes)..."
	mkdir -p "$ROOT/bin"
	(cd "$ROOT/tools" && go build -o "$BIN" ./cmd/aigw-devmongo) || die "build failed"
	touch "$BIN" # go build leaves an up-to-date binary untouched
}

# running prints the pid of our server, if it runs.
running() {
	local pid
	[[ -f "$PIDFILE" ]] || return 1
	pid=$(<"$PIDFILE")
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == aigw-devmongo* ]] || return 1
	echo "$pid"
}

answers() { "$BIN" -ping "$ADDR" -ping-timeout 2s 2>/dev/null; }

cmd_stop() {
	local pid deadline
	if ! pid=$(running); then
		rm -f "$PIDFILE"
		log "not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 15))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pid $pid did not exit after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	rm -f "$PIDFILE"
	log "stopped (data kept in $DATA)"
}

cmd_start() {
	local pid rebuilt=0 deadline t0
	if build; then rebuilt=1; fi
	if pid=$(running); then
		if ((rebuilt)); then
			log "restarting pid $pid to run the new binary"
			cmd_stop >/dev/null
		elif answers; then
			log "already running (pid $pid) on $ADDR"
			return 0
		else
			log "pid $pid runs but does not answer on $ADDR; restarting it"
			cmd_stop >/dev/null
		fi
	fi
	if answers; then
		die "something else answers MongoDB hello on $ADDR; stop it or set AIGW_DEVMONGO_PORT"
	fi

	mkdir -p "$STATE" "$DATA"
	if [[ -f "$LOGFILE" ]]; then mv -f "$LOGFILE" "$LOGFILE.1"; fi
	t0=$(date +%s%N)
	# setsid: its own session, so a Ctrl-C in the terminal that ran this
	# script (e.g. during make test) does not reach it.
	setsid nohup "$BIN" -listen "$ADDR" -data-dir "$DATA" </dev/null >>"$LOGFILE" 2>&1 &
	pid=$!
	echo "$pid" >"$PIDFILE"

	deadline=$((SECONDS + READY_TIMEOUT))
	until answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "it exited during start; the end of $LOGFILE:"
			tail -n 30 "$LOGFILE" >&2 || true
			rm -f "$PIDFILE"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "no answer on $ADDR after $READY_TIMEOUT s; the end of $LOGFILE:"
			tail -n 30 "$LOGFILE" >&2 || true
			cmd_stop >/dev/null
			exit 1
		fi
		sleep 0.05
	done
	log "running (pid $pid) on $ADDR, ready in $((($(date +%s%N) - t0) / 1000000)) ms; data in $DATA, log in $LOGFILE"
}

cmd_status() {
	local pid
	if ! pid=$(running); then
		log "not running"
		return 1
	fi
	if ! answers; then
		log "pid $pid runs but does not answer on $ADDR"
		return 1
	fi
	log "running (pid $pid) on $ADDR; data in $DATA"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
