#!/usr/bin/env bash
# Installs promtool, which `make test` uses to check monitoring/ (alert rules,
# their unit tests, the example scrape config): Debian's `prometheus` package
# provides it. Idempotent: does nothing when promtool is on PATH.
#
#   scripts/promtool.sh
#
# Runs apt-get as root (or through sudo); apt-get update only when the package
# lists do not know prometheus yet. The package's service is not needed: where
# systemd runs, it is stopped and disabled (make test never starts a Prometheus).
set -euo pipefail

log() { printf 'promtool: %s\n' "$*"; }

if command -v promtool >/dev/null; then
	log "$(promtool --version 2>&1 | head -1) already installed"
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	log "apt-get not found: install promtool (Prometheus 2.x, https://prometheus.io/download/) by hand" >&2
	exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
	if ! command -v sudo >/dev/null; then
		log "run as root (or install sudo): apt-get needs it" >&2
		exit 1
	fi
	sudo=(sudo DEBIAN_FRONTEND=noninteractive)
fi

start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
	log "apt-get update (the package lists lack prometheus)"
	"${sudo[@]}" apt-get update -q
fi
log "apt-get install prometheus (for promtool)"
"${sudo[@]}" apt-get install -y -q --no-install-recommends prometheus
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
	"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null || { log "prometheus installed but promtool is not on PATH" >&2; exit 1; }
log "$(promtool --version 2>&1 | head -1) installed in $((SECONDS - start)) s"
