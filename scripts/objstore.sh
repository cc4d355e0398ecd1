#!/usr/bin/env bash
# The dev/CI S3-compatible object store: versitygw (Versity S3 Gateway,
# Apache-2.0, Go) with its posix backend, a bucket being a directory under
# .aigw/objstore. Built from the Go module proxy at a pinned version into
# bin/versitygw, once (the build takes a few minutes from empty caches).
#
#   scripts/objstore.sh start    # build if needed, start, wait until it answers
#   scripts/objstore.sh stop     # SIGTERM, wait for a clean exit
#   scripts/objstore.sh status   # exit 1 unless running and answering
#
# It listens on 127.0.0.1:$AIGW_OBJSTORE_PORT (default 7070) with the dev
# credentials of scripts/env.sh (AIGW_S3_ACCESS_KEY / AIGW_S3_SECRET_KEY) and
# creates the bucket $AIGW_S3_BUCKET (a directory). Its pid and log are in
# .aigw/objstore.{pid,log}. start is idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
PORT="${AIGW_OBJSTORE_PORT:-7070}"
READY_TIMEOUT="${AIGW_OBJSTORE_READY_TIMEOUT:-30}"
ADDR="127.0.0.1:$PORT"
STATE="$ROOT/.aigw"
DATA="$STATE/objstore"
PIDFILE="$STATE/objstore.pid"
LOGFILE="$STATE/objstore.log"
BIN="$ROOT/bin/versitygw"
VERSION="v1.8.0"
MODULE="github.com/versity/versitygw/cmd/versitygw"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { printf 'objstore: %s\n' "$*"; }
die() {
	printf 'objstore: error: %s\n' "$*" >&2
	exit 1
}

if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
	die "AIGW_OBJSTORE_PORT=$PORT is not a port"
fi
[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "AIGW_OBJSTORE_READY_TIMEOUT=$READY_TIMEOUT: want whole seconds"

# build installs the pinned versitygw into bin/ unless it is there already
# (bin/versitygw.version names the version built).
build() {
	if [[ -x "$BIN" && "$(cat "$BIN.version" 2>/dev/null)" == "$VERSION" ]]; then
		return 0
	fi
	command -v go >/dev/null || die "go is not installed; it is needed to build $BIN"
	log "building bin/versitygw $VERSION from the Go module proxy (a few minutes the first time)..."
	mkdir -p "$ROOT/bin"
	local tmp
	tmp=$(mktemp -d)
	# Outside the workspace: versitygw's own go.mod decides its dependencies.
	(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod GOBIN="$ROOT/bin" go install "$MODULE@$VERSION") || {
		rm -rf "$tmp"
		die "go install $MODULE@$VERSION failed"
	}
	rm -rf "$tmp"
	echo "$VERSION" >"$BIN.version"
}

# running prints the pid of our server, if it runs.
running() {
	local pid
	[[ -f "$PIDFILE" ]] || return 1
	pid=$(<"$PIDFILE")
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	[[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == versitygw* ]] || return 1
	echo "$pid"
}

# answers: an HTTP server on ADDR answers an unsigned request (an S3 API says
# 403 to an anonymous caller). Plain bash, so that no curl is needed.
answers() {
	timeout 2 bash -c '
		exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
		printf "GET / HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3
		IFS= read -r line <&3 && [[ "$line" == HTTP/1.[01]\ [1-5]* ]]
	' _ "$ADDR" 2>/dev/null
}

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
	local pid deadline t0
	build
	# The bucket is a directory of the posix backend.
	mkdir -p "$DATA/$AIGW_S3_BUCKET"
	if pid=$(running); then
		if answers; then
			log "already running (pid $pid) on $ADDR"
			return 0
		fi
		log "pid $pid runs but does not answer on $ADDR; restarting it"
		cmd_stop >/dev/null
	fi
	if answers; then
		die "something else answers HTTP on $ADDR; stop it or set AIGW_OBJSTORE_PORT"
	fi
	if [[ -f "$LOGFILE" ]]; then mv -f "$LOGFILE" "$LOGFILE.1"; fi
	t0=$(date +%s%N)
	# setsid: its own session, so a Ctrl-C in the terminal that ran this
	# script does not reach it. The keys come through the environment, not
	# the command line (ps shows arguments to every user).
	ROOT_ACCESS_KEY_ID="$AIGW_S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$AIGW_S3_SECRET_KEY" \
		setsid nohup "$BIN" --port "$ADDR" --region "$AIGW_S3_REGION" --quiet posix "$DATA" \
		</dev/null >>"$LOGFILE" 2>&1 &
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
	log "running (pid $pid) on $ADDR, ready in $((($(date +%s%N) - t0) / 1000000)) ms; bucket $AIGW_S3_BUCKET in $DATA, log in $LOGFILE"
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
build) build ;;
*)
	echo "usage: $0 start|stop|status|build" >&2
	exit 2
	;;
esac
