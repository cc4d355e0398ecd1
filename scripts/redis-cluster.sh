#!/usr/bin/env bash
# A local Redis Cluster for development and tests: 3 masters + 3 replicas on
# 127.0.0.1, ports BASE..BASE+5 (AIGW_REDIS_PORT_BASE, default 7001), data and
# logs under .aigw/redis/<port>/ in the repository.
#
#   scripts/redis-cluster.sh start    # idempotent: creates, heals or recreates
#   scripts/redis-cluster.sh stop     # clean shutdown of every node
#   scripts/redis-cluster.sh status   # nodes and roles; exit 1 if unhealthy
#
# start returns at once when a healthy cluster is already up. Nodes that are
# down (a test may SIGKILL a master) are restarted with their own cluster
# config, so they rejoin, as replicas if a failover happened. A cluster that
# does not heal within AIGW_REDIS_HEAL_TIMEOUT seconds (default 30) is stopped,
# wiped and created anew. Needs redis-server and redis-cli (Debian packages
# redis-server and redis-tools), installed with apt-get when missing and
# running as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.aigw/redis"
HOST=127.0.0.1
BASE="${AIGW_REDIS_PORT_BASE:-7001}"
HEAL_TIMEOUT="${AIGW_REDIS_HEAL_TIMEOUT:-30}"
CREATE_TIMEOUT=30
MASTERS=3
NODES=6

log() { printf 'redis-cluster: %s\n' "$*"; }
die() {
	printf 'redis-cluster: error: %s\n' "$*" >&2
	exit 1
}

if ! [[ "$BASE" =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE + NODES - 1 > 55535)); then
	die "AIGW_REDIS_PORT_BASE=$BASE: want a port in 1024..55530 (the cluster bus uses port+10000)"
fi
[[ "$HEAL_TIMEOUT" =~ ^[0-9]+$ ]] || die "AIGW_REDIS_HEAL_TIMEOUT=$HEAL_TIMEOUT: want whole seconds"
PORTS=()
for ((i = 0; i < NODES; i++)); do PORTS+=($((BASE + i))); done
RANGE="$HOST:${PORTS[0]}-${PORTS[-1]}"

# rcli PORT ARGS... runs redis-cli against one node, bounded in time so that a
# hung node cannot hang the script.
rcli() {
	local port=$1
	shift
	timeout 5 redis-cli -h "$HOST" -p "$port" "$@"
}

alive() { [[ "$(rcli "$1" ping 2>/dev/null)" == PONG ]]; }

# snapshot asks every node, with one redis-cli call per node (on a busy
# machine each process start costs), and fills: UP (1 when it answers), DIR
# (its data directory), STATE (cluster_state), KNOWN (cluster_known_nodes),
# ROLE, REPLICAS (connected_slaves), LINK (a replica's master_link_status),
# and VIEW: the CLUSTER NODES lines of the first node that answers.
declare -A UP DIR STATE KNOWN ROLE REPLICAS LINK
VIEW=()
SNAPDIR=""
snapshot() {
	local port line want_dir
	if [[ -z "$SNAPDIR" ]]; then
		SNAPDIR=$(mktemp -d)
		trap 'rm -rf "$SNAPDIR"' EXIT
	fi
	VIEW=()
	for port in "${PORTS[@]}"; do # all nodes at once
		printf 'PING\nCONFIG GET dir\nCLUSTER INFO\nINFO replication\nCLUSTER NODES\n' |
			rcli "$port" >"$SNAPDIR/$port" 2>/dev/null &
	done
	wait || true
	for port in "${PORTS[@]}"; do
		UP[$port]=0 DIR[$port]="" STATE[$port]="" KNOWN[$port]="" ROLE[$port]="" REPLICAS[$port]=0 LINK[$port]=""
		local view=()
		want_dir=0
		while IFS= read -r line; do
			line=${line%$'\r'}
			if ((want_dir)); then
				DIR[$port]=$line
				want_dir=0
				continue
			fi
			case $line in
			PONG) UP[$port]=1 ;;
			dir) want_dir=1 ;;
			cluster_state:*) STATE[$port]=${line#*:} ;;
			cluster_known_nodes:*) KNOWN[$port]=${line#*:} ;;
			role:*) ROLE[$port]=${line#*:} ;;
			connected_slaves:*) REPLICAS[$port]=${line#*:} ;;
			master_link_status:*) LINK[$port]=${line#*:} ;;
			*) if [[ $line =~ ^[0-9a-f]{40}\  ]]; then view+=("$line"); fi ;;
			esac
		done <"$SNAPDIR/$port"
		if ((${#VIEW[@]} == 0 && ${#view[@]} > 0)); then VIEW=("${view[@]}"); fi
	done
}

# check_health takes a snapshot and sets PROBLEM to why the cluster is not
# healthy (status 1), or to "" (status 0) when every node is up with
# cluster_state:ok and 6 known nodes, and there are exactly 3 masters, each
# with a connected replica, and every replica has finished its sync (a replica
# still syncing, e.g. a node just restarted, could not take over its master).
PROBLEM=""
check_health() {
	local port line id flags link masters=0
	snapshot
	for port in "${PORTS[@]}"; do
		if ((UP[$port] == 0)); then
			PROBLEM="node $port is down"
			return 1
		fi
		if [[ "${STATE[$port]}" != ok ]]; then
			PROBLEM="node $port: cluster_state:${STATE[$port]:-?}"
			return 1
		fi
		if [[ "${KNOWN[$port]}" != "$NODES" ]]; then
			PROBLEM="node $port knows ${KNOWN[$port]:-?} nodes, want $NODES"
			return 1
		fi
	done
	for line in "${VIEW[@]}"; do
		read -r id _ flags _ _ _ _ link _ <<<"$line"
		case ",$flags," in
		*,fail,* | *,fail\?,* | *,handshake,* | *,noaddr,*)
			PROBLEM="node $id has flags $flags"
			return 1
			;;
		esac
		if [[ "$link" != connected ]]; then
			PROBLEM="node $id: link $link"
			return 1
		fi
	done
	for port in "${PORTS[@]}"; do
		[[ "${ROLE[$port]}" == master ]] || continue
		masters=$((masters + 1))
		if ! [[ "${REPLICAS[$port]}" =~ ^[1-9][0-9]*$ ]]; then
			PROBLEM="master $port has no connected replica"
			return 1
		fi
	done
	for port in "${PORTS[@]}"; do
		if [[ "${ROLE[$port]}" == slave && "${LINK[$port]}" != up ]]; then
			PROBLEM="replica $port: master_link_status:${LINK[$port]:-?} (still syncing)"
			return 1
		fi
	done
	if ((masters != MASTERS)); then
		PROBLEM="$masters masters, want $MASTERS"
		return 1
	fi
	PROBLEM=""
}

# wait_healthy SECONDS: until healthy, or log the last problem and fail.
wait_healthy() {
	local deadline=$((SECONDS + $1))
	until check_health; do
		if ((SECONDS >= deadline)); then
			log "not healthy after $1 s: $PROBLEM"
			return 1
		fi
		sleep 0.2
	done
}

# check_ports: every port that answers must be one of our nodes (from the
# last snapshot).
check_ports() {
	local port
	for port in "${PORTS[@]}"; do
		if ((UP[$port])) && [[ "${DIR[$port]}" != "$DATA/$port" ]]; then
			die "port $port is served by a Redis that is not ours (its dir is ${DIR[$port]:-unknown}, not $DATA/$port); stop it or set AIGW_REDIS_PORT_BASE"
		fi
	done
}

ensure_redis() {
	if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
		return
	fi
	if [[ "$(id -u)" -ne 0 ]]; then
		die "redis-server and redis-cli are needed; install them with: sudo apt-get install redis-server redis-tools"
	fi
	log "installing redis-server and redis-tools with apt-get..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq redis-server redis-tools >/dev/null
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		die "apt-get did not install redis-server and redis-cli"
	fi
}

write_conf() {
	local port=$1 dir="$DATA/$1"
	mkdir -p "$dir"
	cat >"$dir/redis.conf" <<EOF
# Written by scripts/redis-cluster.sh at every start of this node.
port $port
bind $HOST
protected-mode yes
dir "$dir"
cluster-enabled yes
cluster-config-file "$dir/nodes.conf"
cluster-node-timeout 2000
appendonly yes
save ""
daemonize yes
pidfile "$dir/redis.pid"
logfile "$dir/redis.log"
EOF
}

start_node() {
	local port=$1
	write_conf "$port"
	redis-server "$DATA/$port/redis.conf" ||
		die "redis-server on port $port failed to start; see $DATA/$port/redis.log"
}

# wait_alive PORT...: until every node answers PING (10 s at most).
wait_alive() {
	local port deadline=$((SECONDS + 10))
	for port in "$@"; do
		until alive "$port"; do
			if ((SECONDS >= deadline)); then
				log "node $port does not answer; the end of its log:"
				tail -n 20 "$DATA/$port/redis.log" 2>/dev/null || true
				return 1
			fi
			sleep 0.1
		done
	done
}

# stop_all stops every node that runs or has a pidfile: SHUTDOWN to all at
# once (a node takes about a second to exit), then, for each, SIGTERM to the
# pid in its pidfile if it still runs after 5 s and SIGKILL after 15 s; waits
# until every port is free.
stop_all() {
	local port pid deadline=$((SECONDS + 15))
	local -A pid_of=()
	for port in "${PORTS[@]}"; do
		pid=""
		if [[ -f "$DATA/$port/redis.pid" ]]; then pid=$(<"$DATA/$port/redis.pid"); fi
		if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(ps -o comm= -p "$pid" 2>/dev/null)" == redis-server* ]]; then
			pid_of[$port]=$pid
		fi
		# NOW: do not wait for lagging replicas; the AOF is flushed on shutdown.
		if ((UP[$port])); then rcli "$port" shutdown nosave now >/dev/null 2>&1 & fi
	done
	wait || true
	for port in "${PORTS[@]}"; do
		pid=${pid_of[$port]:-}
		while [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; do
			if ((SECONDS >= deadline)); then
				log "node $port (pid $pid) did not stop; sending SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				break
			elif ((SECONDS >= deadline - 10)); then
				kill -TERM "$pid" 2>/dev/null || true
			fi
			sleep 0.05
		done
		while alive "$port"; do
			((SECONDS < deadline + 5)) || die "node $port is still running"
			sleep 0.1
		done
		rm -f "$DATA/$port/redis.pid"
	done
}

create() {
	local port out addrs=()
	log "creating a new cluster on $RANGE (data in $DATA)"
	rm -rf "$DATA"
	mkdir -p "$DATA"
	for port in "${PORTS[@]}"; do
		start_node "$port"
		addrs+=("$HOST:$port")
	done
	wait_alive "${PORTS[@]}" || die "nodes did not start"
	if ! out=$(redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes 2>&1); then
		printf '%s\n' "$out" | tail -n 20
		die "redis-cli --cluster create failed"
	fi
	wait_healthy "$CREATE_TIMEOUT" || die "the new cluster did not become healthy"
	echo "$BASE" >"$DATA/created"
}

# print_nodes: address, role, link state, and slots or master of every node,
# as the first node that answers sees them (from the last snapshot).
print_nodes() {
	local line id addr flags master link slots
	local -A addr_of=()
	for line in "${VIEW[@]}"; do
		read -r id addr _ <<<"$line"
		addr_of[$id]=${addr%@*}
	done
	for line in "${VIEW[@]}"; do
		read -r _ addr flags master _ _ _ link slots <<<"$line"
		flags=${flags/myself,/}
		if [[ "$master" != - ]]; then slots="replica of ${addr_of[$master]:-$master}"; fi
		printf '  %-16s %-12s %-13s %s\n' "${addr%@*}" "$flags" "$link" "$slots"
	done | sort
}

cmd_start() {
	local t0=$SECONDS port down=()
	ensure_redis
	if check_health; then
		check_ports
		log "already running and healthy on $RANGE"
		return 0
	fi
	check_ports
	if [[ -f "$DATA/created" && "$(<"$DATA/created")" == "$BASE" ]]; then
		for port in "${PORTS[@]}"; do
			if ((UP[$port] == 0)); then down+=("$port"); fi
		done
		if ((${#down[@]} > 0)); then
			log "restarting stopped nodes: ${down[*]}"
			for port in "${down[@]}"; do start_node "$port"; done
			wait_alive "${down[@]}" || true
		fi
		log "waiting for the cluster to be healthy (up to $HEAL_TIMEOUT s)..."
		if wait_healthy "$HEAL_TIMEOUT"; then
			log "healthy after $((SECONDS - t0)) s on $RANGE"
			print_nodes
			return 0
		fi
		log "the cluster did not heal; recreating it (its data is lost)"
		snapshot
	fi
	stop_all
	create
	log "healthy after $((SECONDS - t0)) s on $RANGE"
	print_nodes
}

cmd_stop() {
	local port any=0
	command -v redis-cli >/dev/null || die "redis-cli is not installed"
	snapshot
	check_ports
	for port in "${PORTS[@]}"; do
		if ((UP[$port])) || [[ -f "$DATA/$port/redis.pid" ]]; then any=1; fi
	done
	if ((any == 0)); then
		log "not running"
		return 0
	fi
	stop_all
	log "stopped (data kept in $DATA)"
}

cmd_status() {
	local port up=0
	command -v redis-cli >/dev/null || die "redis-cli is not installed"
	if check_health; then
		print_nodes
		log "healthy: $MASTERS masters with a replica each, cluster_state:ok, on $RANGE"
		return 0
	fi
	for port in "${PORTS[@]}"; do
		if ((UP[$port])); then up=$((up + 1)); else log "node $port: down"; fi
	done
	if ((up == 0)); then
		log "not running"
		return 1
	fi
	print_nodes
	log "unhealthy: $PROBLEM"
	return 1
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
