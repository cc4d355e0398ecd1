#!/usr/bin/env bash
# The local servers aigw's tests and benchmarks run against: a Redis Cluster
# (scripts/redis-cluster.sh), a MongoDB-wire server (scripts/devmongo.sh) and
# an S3-compatible object store (scripts/objstore.sh).
#
#   scripts/services.sh up       # start them (idempotent)
#   scripts/services.sh down     # stop them
#   scripts/services.sh status   # exit 1 if one in use is unhealthy
#
# Set AIGW_REDIS_ADDRS to use an existing Redis Cluster instead of the local
# one, AIGW_MONGO_URI to use an existing MongoDB instead of devmongo, and
# AIGW_S3_ENDPOINT to use an existing S3 store (values equal to the local
# servers' addresses, as exported by scripts/env.sh, still mean the local
# servers).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
remote_redis="${AIGW_REDIS_ADDRS:-}"
remote_mongo="${AIGW_MONGO_URI:-}"
remote_s3="${AIGW_S3_ENDPOINT:-}"
# shellcheck source=scripts/env.sh
source "$SCRIPTS/env.sh"
if [[ "$remote_redis" == "$aigw_local_redis_addrs" ]]; then remote_redis=""; fi
if [[ "$remote_mongo" == "$aigw_local_mongo_uri" ]]; then remote_mongo=""; fi
if [[ "$remote_s3" == "$aigw_local_s3_endpoint" ]]; then remote_s3=""; fi

log() { printf 'services: %s\n' "$*"; }

addresses() {
	log "AIGW_REDIS_ADDRS=$AIGW_REDIS_ADDRS${remote_redis:+ (given; local cluster not used)}"
	log "AIGW_MONGO_URI=$AIGW_MONGO_URI${remote_mongo:+ (given; devmongo not used)}"
	log "AIGW_S3_ENDPOINT=$AIGW_S3_ENDPOINT${remote_s3:+ (given; the local object store not used)}"
}

cmd_up() {
	if [[ -n "$remote_redis" ]]; then
		log "AIGW_REDIS_ADDRS is set; not starting the local Redis Cluster"
	else
		"$SCRIPTS/redis-cluster.sh" start
	fi
	if [[ -n "$remote_mongo" ]]; then
		log "AIGW_MONGO_URI is set; not starting devmongo"
	else
		"$SCRIPTS/devmongo.sh" start
	fi
	if [[ -n "$remote_s3" ]]; then
		log "AIGW_S3_ENDPOINT is set; not starting the local object store"
	else
		"$SCRIPTS/objstore.sh" start
	fi
	addresses
}

# down stops the local servers whatever the environment says: stopping one
# that does not run is a no-op.
cmd_down() {
	local rc=0
	"$SCRIPTS/objstore.sh" stop || rc=1
	"$SCRIPTS/devmongo.sh" stop || rc=1
	"$SCRIPTS/redis-cluster.sh" stop || rc=1
	return "$rc"
}

cmd_status() {
	local rc=0
	if [[ -z "$remote_redis" ]]; then "$SCRIPTS/redis-cluster.sh" status || rc=1; fi
	if [[ -z "$remote_mongo" ]]; then "$SCRIPTS/devmongo.sh" status || rc=1; fi
	if [[ -z "$remote_s3" ]]; then "$SCRIPTS/objstore.sh" status || rc=1; fi
	addresses
	return "$rc"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
