#!/usr/bin/env bash
# The whole aigw system on this machine, as processes (what `make up` / `make
# down` run after `make build`):
#
#   scripts/up.sh up      # services, gateway, stack.yml, workers, demo client
#   scripts/up.sh down    # stop all of it
#   scripts/up.sh status
#
# State lives in .aigw/ (git-ignored): generated secrets in .aigw/secrets,
# the gateway's state in .aigw/gateway, pid files and logs, and demo.env.
# Both commands are idempotent. AIGW_GATEWAY_PORT (default 8080) moves the gateway.
# Webhooks may reach receivers on this machine: AIGW_WEBHOOK_ALLOWED_NETS (default
# here 127.0.0.0/8; the functions alone allow public addresses only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
BIN="$ROOT/bin"
STATE="$ROOT/.aigw"
SECRETS="$STATE/secrets"
PORT="${AIGW_GATEWAY_PORT:-8080}"
GATEWAY="http://127.0.0.1:$PORT"
# Workers: pool name and slots. The gpu pool falls back to CPU where there is no GPU.
WORKERS=("cpu:4" "gpu:1")
# The workers' Prometheus metrics: 127.0.0.1:9108, :9109, ... (monitoring/prometheus.yml).
WORKER_METRICS_PORT=9108

log() { printf 'up: %s\n' "$*"; }
die() { printf 'up: %s\n' "$*" >&2; exit 1; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# start NAME LOG CMD... runs CMD in the background unless NAME's pid file is alive.
start() {
	local name="$1" logf="$2"; shift 2
	local pidf="$STATE/$name.pid"
	if alive "$pidf"; then
		log "$name already running (pid $(cat "$pidf"))"
		return
	fi
	setsid "$@" >>"$logf" 2>&1 </dev/null &
	echo $! >"$pidf"
	log "$name started (pid $!, log ${logf#"$ROOT"/})"
}

stop() {
	local name="$1" pidf="$STATE/$1.pid"
	if alive "$pidf"; then
		local pid; pid="$(cat "$pidf")"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
		log "$name stopped"
	fi
	rm -f "$pidf"
}

wait_http() {
	local url="$1" what="$2"
	for _ in $(seq 1 150); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	die "$what did not answer at $url (see the logs in .aigw/)"
}

secret() { # secret NAME VALUE: write once
	local f="$SECRETS/$1"
	if [[ ! -s "$f" ]]; then
		umask 077
		printf '%s' "$2" >"$f"
	fi
}

cmd_up() {
	for b in aigw-gateway aigw-stack aigw-worker auth router orchestrator executors console aigw-echo; do
		[[ -x "$BIN/$b" ]] || die "bin/$b missing: run make build (make up does)"
	done
	"$SCRIPTS/services.sh" up
	"$SCRIPTS/python-torch.sh"
	# shellcheck source=scripts/env.sh
	source "$SCRIPTS/env.sh"
	mkdir -p "$SECRETS" "$STATE/gateway"
	chmod 700 "$SECRETS"

	secret aigw-jwt-signing-key "$("$BIN/auth" genkey)"
	secret aigw-admin-token "$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)"
	printf '%s' "$AIGW_MONGO_URI" >"$SECRETS/aigw-mongo-uri"
	printf '%s' "$AIGW_REDIS_ADDRS" >"$SECRETS/aigw-redis-addrs"
	printf '%s' "${AIGW_REDIS_PASSWORD:-}" >"$SECRETS/aigw-redis-password"
	printf '%s' "$AIGW_S3_ENDPOINT" >"$SECRETS/aigw-s3-endpoint"
	printf '%s' "${AIGW_S3_PUBLIC_ENDPOINT:-}" >"$SECRETS/aigw-s3-public-endpoint"
	printf '%s' "$AIGW_S3_BUCKET" >"$SECRETS/aigw-s3-bucket"
	printf '%s' "${AIGW_S3_ACCESS_KEY:-}" >"$SECRETS/aigw-s3-access-key"
	printf '%s' "${AIGW_S3_SECRET_KEY:-}" >"$SECRETS/aigw-s3-secret-key"

	start gateway "$STATE/gateway.log" env AIGW_GATEWAY_ADDR="127.0.0.1:$PORT" \
		AIGW_GATEWAY_BIN_DIR="$BIN" AIGW_GATEWAY_STATE_DIR="$STATE/gateway" \
		AIGW_REDIS_ADDRS="$AIGW_REDIS_ADDRS" AIGW_WEBHOOK_ALLOWED_NETS="${AIGW_WEBHOOK_ALLOWED_NETS:-127.0.0.0/8}" "$BIN/aigw-gateway"
	wait_http "$GATEWAY/healthz" "the gateway"
	local user pass
	user="$(cat "$STATE/gateway/auth/basic-auth-user")"
	pass="$(cat "$STATE/gateway/auth/basic-auth-password")"

	OPENFAAS_URL="$GATEWAY" AIGW_GATEWAY_USER="$user" AIGW_GATEWAY_PASSWORD="$pass" \
		AIGW_VERSION="${AIGW_VERSION:-latest}" AIGW_GATEWAY_URL="$GATEWAY" \
		"$BIN/aigw-stack" deploy -f "$ROOT/stack.yml" -secrets-dir "$SECRETS" \
		-env "AIGW_WEBHOOK_ALLOWED_NETS=${AIGW_WEBHOOK_ALLOWED_NETS:-127.0.0.0/8},AIGW_S3_REGION=$AIGW_S3_REGION"
	log "stack.yml deployed to $GATEWAY"

	AIGW_MONGO_URI="$AIGW_MONGO_URI" "$BIN/aigw-worker" register "$ROOT/algorithms"
	local w pool slots i=0
	for w in "${WORKERS[@]}"; do
		pool="${w%%:*}" slots="${w##*:}"
		start "worker-$pool" "$STATE/worker-$pool.log" env AIGW_POOL="$pool" AIGW_SLOTS="$slots" \
			AIGW_NODE_NAME="$(hostname)-$pool" AIGW_REDIS_ADDRS="$AIGW_REDIS_ADDRS" \
			AIGW_MONGO_URI="$AIGW_MONGO_URI" AIGW_ALGORITHMS_DIR="$ROOT/algorithms" AIGW_BIN_DIR="$BIN" \
			AIGW_INTERPRETERS=/usr/bin/python3 AIGW_CPU_FALLBACK=true \
			AIGW_METRICS_ADDR="127.0.0.1:$((WORKER_METRICS_PORT + i))" "$BIN/aigw-worker"
		i=$((i + 1))
	done

	local demo="$STATE/demo.env"
	if ! grep -qs '^AIGW_CLIENT_SECRET=' "$demo"; then
		AIGW_MONGO_URI="$AIGW_MONGO_URI" "$BIN/auth" create-client -name demo -tenant demo \
			-scopes jobs:read,jobs:write >"$STATE/demo-client.env"
	fi
	[[ -s "$STATE/demo-client.env" ]] || die "no demo client in .aigw/demo-client.env; run make down && make up"
	{
		echo "# aigw on this machine (written by make up)"
		echo "AIGW_URL=$GATEWAY/function/router"
		echo "AIGW_AUTH_URL=$GATEWAY/function/auth"
		echo "AIGW_EXECUTORS_URL=$GATEWAY/function/executors"
		echo "AIGW_GATEWAY=$GATEWAY"
		cat "$STATE/demo-client.env"
		echo "AIGW_GATEWAY_USER=$user"
		echo "AIGW_GATEWAY_PASSWORD=$pass"
	} >"$demo"
	chmod 600 "$demo"
	wait_http "$GATEWAY/function/router/_/health" "the router"
	wait_http "$GATEWAY/function/console/_/health" "the console"
	wait_http "$GATEWAY/function/executors/_/health" "the executors function"

	cat <<EOS

aigw is up: gateway $GATEWAY, functions auth, router, orchestrator, executors, console; workers ${WORKERS[*]}.

Web console: $GATEWAY/function/console/
  sign in with AIGW_CLIENT_ID / AIGW_CLIENT_SECRET from .aigw/demo.env (tenant demo),
  or with the admin token in .aigw/secrets/aigw-admin-token (every tenant, admin page).

Try it (paste into a shell):

  set -a; source .aigw/demo.env; set +a
  TOKEN=\$(curl -s -u "\$AIGW_CLIENT_ID:\$AIGW_CLIENT_SECRET" -d grant_type=client_credentials \\
      "\$AIGW_AUTH_URL/oauth/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer \$TOKEN" "\$AIGW_URL/v1/algorithms"
  JOB=\$(curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"input":{"message":"hello","sleep_ms":500}}' "\$AIGW_URL/v1/algorithms/echo/jobs" \\
      | sed 's/^{"id":"\([^"]*\)".*/\1/')
  curl -sN -H "Authorization: Bearer \$TOKEN" "\$AIGW_URL/v1/jobs/\$JOB/events"
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Prefer: wait=30' -H 'Content-Type: application/json' \\
      -d '{"input":{"points":[[0,0],[0,1],[9,9],[9,8]],"k":2}}' "\$AIGW_URL/v1/algorithms/kmeans/jobs"

make down stops everything.
EOS
	print_scrape_targets
}

# print_scrape_targets says where to point a Prometheus: the targets
# monitoring/prometheus.yml scrapes, as they are now.
print_scrape_targets() {
	local targets i=0 w
	targets="$(curl -fsS -u "$(cat "$STATE/gateway/auth/basic-auth-user"):$(cat "$STATE/gateway/auth/basic-auth-password")" \
		"$GATEWAY/system/metrics-targets" 2>/dev/null |
		sed 's/},{/}\n{/g' |
		sed -n 's|.*"targets":\["\([^"]*\)"\].*"__metrics_path__":"\([^"]*\)".*"service":"\([^"]*\)".*|    \3 http://\1\2|p' || true)"
	cat <<EOS

Prometheus: scrape these (prometheus --config.file=monitoring/prometheus.yml does;
Grafana: import monitoring/grafana/aigw.json; alerts: monitoring/alerts.yml):
    gateway $GATEWAY/metrics
    functions, every replica: http_sd_configs at $GATEWAY/system/metrics-targets
      (basic auth: user admin, password in .aigw/gateway/auth/basic-auth-password); now:
${targets:-    (none listed yet)}
EOS
	for w in "${WORKERS[@]}"; do
		echo "    worker ${w%%:*} http://127.0.0.1:$((WORKER_METRICS_PORT + i))/metrics"
		i=$((i + 1))
	done
}

cmd_down() {
	local w
	for w in "${WORKERS[@]}"; do stop "worker-${w%%:*}"; done
	stop gateway # stops the functions it runs
	"$SCRIPTS/services.sh" down
}

cmd_status() {
	local rc=0 n
	for n in gateway worker-cpu worker-gpu; do
		if alive "$STATE/$n.pid"; then log "$n running (pid $(cat "$STATE/$n.pid"))"; else log "$n not running"; rc=1; fi
	done
	"$SCRIPTS/services.sh" status || rc=1
	return "$rc"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) die "usage: scripts/up.sh up|down|status" ;;
esac
