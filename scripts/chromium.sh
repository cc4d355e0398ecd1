#!/usr/bin/env bash
# Installs Debian's chromium, the headless browser of the web console's tests
# (e2e TestConsole drives it with chromedp). Idempotent: does nothing when a
# chromium is on PATH.
#
#   scripts/chromium.sh
#
# Runs apt-get as root (or through sudo); apt-get update only when the package
# lists do not know chromium yet. Prints how long it took.
set -euo pipefail

log() { printf 'chromium: %s\n' "$*"; }

for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null; then
		log "$("$b" --version 2>/dev/null | head -n1) already on PATH"
		exit 0
	fi
done

if ! command -v apt-get >/dev/null; then
	log "apt-get not found: install Chromium (or Chrome) by hand for the console tests" >&2
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
candidate="$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
	log "apt-get update (the package lists lack chromium)"
	"${sudo[@]}" apt-get update -q
fi
log "apt-get install chromium"
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium
log "$(chromium --version 2>/dev/null | head -n1) installed in $((SECONDS - start)) s"
