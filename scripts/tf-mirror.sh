#!/usr/bin/env bash
# tf-mirror.sh — build the Terraform providers aigw uses from the Go module proxy
# into a git-ignored filesystem mirror, because the Terraform registry cannot be
# reached. Binaries that already exist are skipped; every module zip's h1 sum is
# checked against the pinned value (the checksum database does not know these
# modules). See ../shared/terraform-providers.md.
#
# Usage: scripts/tf-mirror.sh            build what is missing
#        scripts/tf-mirror.sh --env      print `export TF_CLI_CONFIG_FILE=...`
#
# Layout:
#   terraform/.mirror/providers/registry.terraform.io/<ns>/<type>/<ver>/linux_amd64/terraform-provider-<type>_v<ver>
#   terraform/.mirror/terraform.tfrc   CLI config: filesystem_mirror only, no direct
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mirror=${AIGW_TF_MIRROR:-$root/terraform/.mirror}
providers=$mirror/providers
tfrc=$mirror/terraform.tfrc
platform=linux_amd64

# namespace type tf-version go-module go-version h1 extra-ldflags
# Only the providers the configurations use: each build costs minutes.
table=(
	"hetznercloud hcloud 1.68.0 github.com/hetznercloud/terraform-provider-hcloud v1.68.0 h1:rblgvaOLxUQuj0EQD9n8hz5MAcZvxB/bH0bfx/T5A90= -X=github.com/hetznercloud/terraform-provider-hcloud/hcloud.Version=1.68.0"
	"hashicorp random 3.9.0 github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260513075824-f8d869dc98d9 h1:RtH+AyIg8JVmGlCnemdp+wcfzC0EjVENjE34GdD4R7Q= -"
)

write_tfrc() {
	mkdir -p "$providers"
	local want
	want=$(printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$providers")
	if [[ ! -f $tfrc || $(cat "$tfrc") != "$want" ]]; then
		printf '%s\n' "$want" >"$tfrc"
	fi
}

if [[ ${1:-} == --env ]]; then
	write_tfrc
	printf 'export TF_CLI_CONFIG_FILE=%q\n' "$tfrc"
	exit 0
fi

command -v go >/dev/null || { echo "tf-mirror: go is not on the PATH" >&2; exit 1; }
write_tfrc

scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

build_one() {
	local ns=$1 type=$2 ver=$3 mod=$4 gover=$5 h1=$6 extra=$7
	local dir=$providers/registry.terraform.io/$ns/$type/$ver/$platform
	local bin=$dir/terraform-provider-${type}_v$ver
	if [[ -x $bin ]]; then
		echo "tf-mirror: $ns/$type $ver present"
		return 0
	fi
	local t0=$SECONDS
	echo "tf-mirror: building $ns/$type $ver from $mod@$gover"
	local work=$scratch/$type
	mkdir -p "$work/dl"
	(cd "$work/dl" && GOWORK=off go mod init scratch >/dev/null 2>&1)
	local json
	json=$(cd "$work/dl" && GOWORK=off GONOSUMDB=$mod GOFLAGS=-mod=mod go mod download -json "$mod@$gover")
	local srcdir sum
	srcdir=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	sum=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",\{0,1\}$/\1/p')
	if [[ -z $srcdir || ! -d $srcdir ]]; then
		echo "tf-mirror: no source directory for $mod@$gover:" >&2
		printf '%s\n' "$json" >&2
		return 1
	fi
	if [[ $sum != "$h1" ]]; then
		echo "tf-mirror: checksum mismatch for $mod@$gover: got $sum, want $h1" >&2
		return 1
	fi
	cp -r "$srcdir" "$work/src"
	chmod -R u+w "$work/src"
	local ldflags="-s -w"
	[[ $extra != - ]] && ldflags+=" $extra"
	mkdir -p "$dir"
	(cd "$work/src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
		go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" .)
	mv "$bin.tmp" "$bin"
	echo "tf-mirror: built $ns/$type $ver in $((SECONDS - t0))s"
}

for row in "${table[@]}"; do
	# shellcheck disable=SC2086
	build_one $row
done
