#!/usr/bin/env bash
# workflow-check.sh — checks of the delivery pipeline that actionlint cannot
# make (run by scripts/check-deploy.sh):
#   stack-env      every ${VAR} stack.yml references is set in the environment
#                  of the faas-deploy action's `faas-cli deploy` step (faas-cli
#                  substitutes them; a missing AIGW_GATEWAY_URL made the
#                  functions fetch the JWKS from themselves: every /v1 call 503);
#   ci-torch       GitHub's test job installs the reference algorithms' system
#                  packages (make system-deps) before make test-go, as
#                  `make test` (.ci/run) does;
#   release-gate   release.yml runs only after a successful CI run (workflow_run
#                  of ci.yml, completed, conclusion success, every job gated by
#                  it) and builds and tags exactly the commit CI tested
#                  (every checkout and the build call use workflow_run.head_sha).
# Each check also runs against a broken copy of its file, which it must reject,
# so a check that cannot fail fails here. Prints `N passed, N failed`.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

action=.github/actions/faas-deploy/action.yml
ci=.github/workflows/ci.yml
release=.github/workflows/release.yml
stack=stack.yml

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "  $*" >&2
	return 1
}

# stack_vars STACK: the variables stack.yml references as ${VAR...}.
stack_vars() {
	sed 's/#.*//' "$1" | grep -o '\${[A-Za-z_][A-Za-z0-9_]*' | sed 's/^\${//' | sort -u
}

# deploy_env ACTION: the env keys of the step of ACTION that runs faas-cli deploy.
deploy_env() {
	awk '
		function flush() { if (step ~ /faas-cli deploy/) printf "%s", keys; step = ""; keys = ""; inenv = 0 }
		/^    - / { flush() }
		{ step = step $0 "\n" }
		/^      env:/ { inenv = 1; next }
		/^      [A-Za-z]/ { inenv = 0 }
		inenv && /^        [A-Za-z_][A-Za-z0-9_]*:/ { k = $1; sub(/:$/, "", k); keys = keys k "\n" }
		END { flush() }
	' "$1" | sort -u
}

check_stack_env() { # STACK ACTION
	local vars env v bad=0
	vars=$(stack_vars "$1")
	env=$(deploy_env "$2")
	[[ -n $vars ]] || fail "$1 references no variables (AIGW_VERSION at least)" || return 1
	[[ -n $env ]] || fail "$2: no step runs faas-cli deploy with an env block" || return 1
	for v in $vars; do
		grep -qx "$v" <<<"$env" || { fail "$2: the faas-cli deploy step does not set $v, which $1 references"; bad=1; }
	done
	return "$bad"
}

# job_text FILE JOB: the lines of JOB under jobs: in a workflow.
job_text() {
	awk -v want="$2" '
		/^jobs:/ { injobs = 1; next }
		injobs && /^[^ #]/ { injobs = 0 }
		injobs && /^  [A-Za-z0-9_-]+:[ ]*$/ { name = $1; sub(/:$/, "", name); next }
		injobs && name == want { print }
	' "$1"
}

# job_names FILE: the jobs of a workflow.
job_names() {
	awk '
		/^jobs:/ { injobs = 1; next }
		injobs && /^[^ #]/ { injobs = 0 }
		injobs && /^  [A-Za-z0-9_-]+:[ ]*$/ { name = $1; sub(/:$/, "", name); print name }
	' "$1"
}

check_ci_torch() { # CI
	local text deps tests
	text=$(job_text "$1" test)
	[[ -n $text ]] || fail "$1: no job named test" || return 1
	if grep -qE 'run: make test$' <<<"$text"; then
		return 0 # the same target as .ci/run
	fi
	tests=$(grep -nE 'make test-go' <<<"$text" | head -n 1 | cut -d: -f1)
	deps=$(grep -nE 'make system-deps|scripts/python-torch\.sh' <<<"$text" | head -n 1 | cut -d: -f1)
	[[ -n $tests ]] || fail "$1: the test job runs neither make test nor make test-go" || return 1
	[[ -n $deps && $deps -lt $tests ]] ||
		fail "$1: the test job runs make test-go without make system-deps first (the matmul tests need python3-torch)"
}

check_release_gate() { # RELEASE CI
	local rel=$1 ci_file=$2 on triggers ci_name jobs j text gated changed n refs uses bad=0
	on=$(awk '/^on:/ { inon = 1; next } inon && /^[^ #]/ { inon = 0 } inon { print }' "$rel")
	triggers=$(grep -E '^  [A-Za-z_]+:' <<<"$on" | sed 's/^  //; s/:.*//' | sort -u)
	[[ $triggers == workflow_run ]] ||
		{ fail "$rel: triggers are [$(echo $triggers)], want only workflow_run (of CI)"; bad=1; }
	ci_name=$(sed -n 's/^name: *//p' "$ci_file" | head -n 1)
	grep -qE "^    workflows: \[ *\"?$ci_name\"? *\]" <<<"$on" ||
		{ fail "$rel: workflow_run must name exactly the CI workflow ($ci_name)"; bad=1; }
	grep -qE '^    types: \[ *completed *\]' <<<"$on" ||
		{ fail "$rel: workflow_run must have types: [completed]"; bad=1; }

	# A job runs only after a green CI if its own if: requires the success, or
	# if it needs a job that does (and its if: does not override a failed need).
	jobs=$(job_names "$rel")
	[[ -n $jobs ]] || fail "$rel: no jobs" || return 1
	declare -A ok=()
	changed=1
	while ((changed)); do
		changed=0
		for j in $jobs; do
			[[ -n ${ok[$j]:-} ]] && continue
			text=$(job_text "$rel" "$j")
			gated=0
			if grep -E '^    if:' <<<"$text" | grep -q "github.event.workflow_run.conclusion == 'success'"; then
				gated=1
			elif ! grep -E '^    if:' <<<"$text" | grep -qE 'always\(\)|failure\(\)|cancelled\(\)'; then
				for n in $(grep -E '^    needs:' <<<"$text" | sed 's/^    needs://; s/[][,]/ /g'); do
					[[ -n ${ok[$n]:-} ]] && gated=1
				done
			fi
			if ((gated)); then
				ok[$j]=1
				changed=1
			fi
		done
	done
	for j in $jobs; do
		[[ -n ${ok[$j]:-} ]] || { fail "$rel: job $j can run without a successful CI run"; bad=1; }
		text=$(job_text "$rel" "$j")
		uses=$(grep -cE 'uses: (actions/checkout@|\./\.github/workflows/)' <<<"$text")
		refs=$(grep -cE '^ +ref: \$\{\{ github\.event\.workflow_run\.head_sha \}\}' <<<"$text")
		[[ $uses -eq $refs ]] ||
			{ fail "$rel: job $j checks out or builds $uses time(s) but only $refs with ref: \${{ github.event.workflow_run.head_sha }} (the commit CI tested)"; bad=1; }
	done
	return "$bad"
}

# run NAME CMD...: a check that must pass.
run() {
	local name=$1
	shift
	if "$@"; then
		echo "ok   $name"
		passed=$((passed + 1))
	else
		echo "FAIL $name"
		failed=$((failed + 1))
	fi
}

# reject NAME CMD...: a check run on a broken file, which must fail.
reject() {
	local name=$1
	shift
	if "$@" 2>/dev/null; then
		echo "FAIL $name: the check accepts a broken file"
		failed=$((failed + 1))
	else
		echo "ok   $name (rejected)"
		passed=$((passed + 1))
	fi
}

run "stack-env: every stack.yml variable is set by $action" check_stack_env "$stack" "$action"
grep -v '^        AIGW_GATEWAY_URL:' "$action" >"$tmp/no-gateway-url.yml"
reject "stack-env: an action without AIGW_GATEWAY_URL" check_stack_env "$stack" "$tmp/no-gateway-url.yml"
{ cat "$stack"; printf '    # ${NOT_SET}\n      X: ${AIGW_NEW_VAR:-x}\n'; } >"$tmp/stack-new-var.yml"
reject "stack-env: a stack.yml variable the action does not set" check_stack_env "$tmp/stack-new-var.yml" "$action"

run "ci-torch: $ci installs python3-torch before the Go tests" check_ci_torch "$ci"
grep -vE 'make system-deps|scripts/python-torch\.sh' "$ci" >"$tmp/ci-no-deps.yml"
reject "ci-torch: a test job without system-deps" check_ci_torch "$tmp/ci-no-deps.yml"

run "release-gate: $release releases only a green CI's commit" check_release_gate "$release" "$ci"
awk '/^on:/ { print "on:\n  push:\n    branches: [main]"; skip = 1; next } skip && /^[^ ]/ { skip = 0 } !skip' "$release" >"$tmp/release-push.yml"
reject "release-gate: a release on push" check_release_gate "$tmp/release-push.yml" "$ci"
grep -v "conclusion == 'success'" "$release" >"$tmp/release-no-if.yml"
reject "release-gate: a release whatever CI concluded" check_release_gate "$tmp/release-no-if.yml" "$ci"
awk '/ref: \$\{\{ github.event.workflow_run.head_sha \}\}/ && !done { done = 1; next } { print }' "$release" >"$tmp/release-no-ref.yml"
reject "release-gate: a checkout of another commit than CI's" check_release_gate "$tmp/release-no-ref.yml" "$ci"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
