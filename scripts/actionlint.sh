#!/usr/bin/env bash
# actionlint.sh — lint every GitHub Actions workflow with actionlint v1.7.12,
# built from the Go module proxy into terraform/.mirror/bin when missing.
# shellcheck/pyflakes integration is off so that results do not depend on
# which of those happen to be installed (local machines lack them, runners
# have them).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=v1.7.12
bindir=${AIGW_TOOLS_BIN:-$root/terraform/.mirror/bin}
bin=$bindir/actionlint-$version

if [[ ! -x $bin ]]; then
	echo "actionlint: building $version"
	mkdir -p "$bindir"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	GOWORK=off GOBIN=$tmp GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
	mv "$tmp/actionlint" "$bin"
fi

cd "$root"
shopt -s nullglob
files=(.github/workflows/*.yml .github/workflows/*.yaml)
if [[ ${#files[@]} -eq 0 ]]; then
	echo "actionlint: no workflows found" >&2
	exit 1
fi
"$bin" -version | head -n 1
"$bin" -no-color -shellcheck= -pyflakes= "${files[@]}"
echo "actionlint: ${#files[@]} workflows clean"
