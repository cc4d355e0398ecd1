#!/usr/bin/env bash
# check-deploy.sh — every deployability check (`make test-deploy`):
#   1. scripts/semver against throwaway git repositories;
#   2. actionlint over .github/workflows;
#   3. scripts/workflow-check.sh: the deploy action sets every variable
#      stack.yml references, GitHub's test job installs python3-torch, and
#      release.yml releases only the commit of a green CI run;
#   4. the Go tests of hcloudfake (the fake Hetzner Cloud API);
#   5. scripts/tf-check.sh: fmt, init, validate, terraform test, cloud-init schema,
#      and a real apply -> plan -> destroy of terraform/envs/local.
# Prints a final `N passed, N failed` line (the sum of the parts) and exits
# non-zero on any failure.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS=${GOFLAGS:--buildvcs=false}

passed=0
failed=0
t0=$SECONDS

# part NAME CMD...: runs a part, shows its output, adds its `N passed, N failed`
# line to the totals (a part without one counts as one check).
part() {
	local name=$1 out rc line p f t=$SECONDS
	shift
	echo "=== $name"
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -Eo '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	rm -f "$out"
	if [[ -n $line ]]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed}
	elif [[ $rc -eq 0 ]]; then
		p=1 f=0
	else
		p=0 f=1
	fi
	[[ $rc -ne 0 && $f -eq 0 ]] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
	echo "=== $name: $p passed, $f failed ($((SECONDS - t))s)"
}

go_tests() {
	(cd hcloudfake && GOWORK=off go test -count=1 ./...)
}

part "semver" scripts/semver_test.sh
part "actionlint" scripts/actionlint.sh
part "workflows" scripts/workflow-check.sh
part "hcloudfake go test" go_tests
part "terraform" scripts/tf-check.sh

echo "check-deploy: $((SECONDS - t0))s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
