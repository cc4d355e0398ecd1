#!/usr/bin/env bash
# Installs what the matmul reference algorithm (algorithms/matmul) needs:
# Debian's python3 with PyTorch (package python3-torch, a CPU build), as
# /usr/bin/python3, and OpenBLAS (libopenblas0-pthread), which replaces the
# reference BLAS that python3-torch pulls in and makes CPU matmuls about 20×
# faster. Idempotent: does nothing when both are there.
#
#   scripts/python-torch.sh
#
# Runs apt-get as root (or through sudo); apt-get update only when the package
# lists do not know python3-torch yet. Prints how long it took. On a GPU node,
# install a CUDA build of torch for /usr/bin/python3 instead (the algorithm
# uses CUDA whenever torch.cuda.is_available()).
set -euo pipefail

PY=/usr/bin/python3
PACKAGES=(python3-torch libopenblas0-pthread)
log() { printf 'python-torch: %s\n' "$*"; }

if [[ -x "$PY" ]] && "$PY" -c 'import torch' 2>/dev/null &&
	dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q 'install ok installed'; then
	log "torch $("$PY" -c 'import torch; print(torch.__version__)') already importable by $PY, with OpenBLAS"
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	log "apt-get not found: install PyTorch for $PY by hand (pip or your distribution)" >&2
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
for p in "${PACKAGES[@]}"; do
	candidate="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
	if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
		log "apt-get update (the package lists lack $p)"
		"${sudo[@]}" apt-get update -q
		break
	fi
done
log "apt-get install ${PACKAGES[*]}"
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

if ! "$PY" -c 'import torch' ; then
	log "python3-torch installed but $PY cannot import torch" >&2
	exit 1
fi
log "torch $("$PY" -c 'import torch; print(torch.__version__)') installed in $((SECONDS - start)) s"
