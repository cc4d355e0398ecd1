# shellcheck shell=bash
# Sourced (by the Makefile before go test and the benchmarks, or by hand:
# `source scripts/env.sh`): exports the addresses of the servers that tests and
# benchmarks use, unless already set.
#
#   AIGW_REDIS_ADDRS            Redis Cluster seed addresses, comma-separated
#                               (default: the local cluster of scripts/redis-cluster.sh)
#   AIGW_MONGO_URI              MongoDB connection string
#                               (default: the local scripts/devmongo.sh server)
#   AIGW_EXPECT_REDIS_MASTERS   3 when AIGW_REDIS_ADDRS is the local cluster
#   AIGW_S3_ENDPOINT            the S3-compatible object store
#                               (default: the local scripts/objstore.sh server)
#   AIGW_S3_BUCKET / AIGW_S3_REGION / AIGW_S3_ACCESS_KEY / AIGW_S3_SECRET_KEY
#                               its bucket, region and keys (the local server's
#                               fixed dev keys when the endpoint is local)
#
# It also sets, not exported, aigw_local_redis_addrs and aigw_local_mongo_uri:
# the local servers' addresses, for scripts/services.sh, and
# aigw_local_s3_endpoint.

aigw_local_redis_addrs=""
for ((aigw_i = 0; aigw_i < 6; aigw_i++)); do
	aigw_local_redis_addrs+="${aigw_local_redis_addrs:+,}127.0.0.1:$((${AIGW_REDIS_PORT_BASE:-7001} + aigw_i))"
done
unset aigw_i
aigw_local_mongo_uri="mongodb://127.0.0.1:${AIGW_DEVMONGO_PORT:-27018}/"
aigw_local_s3_endpoint="http://127.0.0.1:${AIGW_OBJSTORE_PORT:-7070}"

export AIGW_REDIS_ADDRS="${AIGW_REDIS_ADDRS:-$aigw_local_redis_addrs}"
export AIGW_MONGO_URI="${AIGW_MONGO_URI:-$aigw_local_mongo_uri}"
if [[ "$AIGW_REDIS_ADDRS" == "$aigw_local_redis_addrs" ]]; then
	export AIGW_EXPECT_REDIS_MASTERS="${AIGW_EXPECT_REDIS_MASTERS:-3}"
fi
export AIGW_S3_ENDPOINT="${AIGW_S3_ENDPOINT:-$aigw_local_s3_endpoint}"
export AIGW_S3_BUCKET="${AIGW_S3_BUCKET:-aigw}"
export AIGW_S3_REGION="${AIGW_S3_REGION:-us-east-1}"
if [[ "$AIGW_S3_ENDPOINT" == "$aigw_local_s3_endpoint" ]]; then
	# The local server's keys: it listens on loopback only. Never use them
	# for a store anyone else reaches.
	export AIGW_S3_ACCESS_KEY="${AIGW_S3_ACCESS_KEY:-aigw-dev}"
	export AIGW_S3_SECRET_KEY="${AIGW_S3_SECRET_KEY:-aigw-dev-secret-key-loopback-only}"
fi
