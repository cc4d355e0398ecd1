#!/usr/bin/env bash
# Tests of scripts/semver against throwaway git repositories.
# Prints `N passed, N failed`; exits non-zero on a failure.
set -uo pipefail

semver=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/semver
scratch=$(mktemp -d -t aigw-semver.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.com
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

passed=0
failed=0
n=0

# repo: a fresh repository in a new directory, made the current directory.
repo() {
	n=$((n + 1))
	mkdir -p "$scratch/r$n" && cd "$scratch/r$n" || exit 1
	git init -q -b main .
}
# commit MESSAGE: an empty commit with that message (may hold a body).
commit() { git commit -q --allow-empty -m "$1"; }
tag() { git tag "$1"; }

# expect NAME WANT [ARGS]: semver prints WANT and exits 0.
expect() {
	local name=$1 want=$2 got rc
	shift 2
	got=$("$semver" "$@" 2>"$scratch/stderr")
	rc=$?
	if [[ $rc -eq 0 && $got == "$want" ]]; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name: got '$got' (exit $rc), want '$want'; stderr: $(cat "$scratch/stderr")"
	fi
}

# expect_error NAME PATTERN: semver exits non-zero with PATTERN on stderr.
expect_error() {
	local name=$1 pattern=$2 rc
	"$semver" >"$scratch/stdout" 2>"$scratch/stderr"
	rc=$?
	if [[ $rc -ne 0 ]] && grep -q "$pattern" "$scratch/stderr" && [[ ! -s $scratch/stdout ]]; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name: exit $rc, stderr '$(cat "$scratch/stderr")'"
	fi
}

mkdir -p "$scratch/plain" && cd "$scratch/plain" || exit 1
GIT_CEILING_DIRECTORIES=$scratch expect_error "outside a git repository: error" "not inside a git repository"

repo
expect_error "repository without commits: error" "no commits"

repo
commit "chore: initial"
expect "no tags, a chore: 0.0.1" 0.0.1
commit "fix: a bug"
expect "no tags, fixes: 0.0.1" 0.0.1
commit "feat: first feature"
expect "no tags, a feature: 0.1.0" 0.1.0
expect "--tag prints the v prefix" v0.1.0 --tag
expect "--current with no tags: 0.0.0" 0.0.0 --current

repo
commit "feat: a"
tag v1.2.3
expect "no commits since the tag: the same version" 1.2.3
expect "--current: the tag" 1.2.3 --current
commit "docs: readme"
expect "after v1.2.3, docs: patch" 1.2.4
commit "fix(queue): lease renewal"
expect "after v1.2.3, fix: patch" 1.2.4
commit "feat(router): Prefer: wait"
expect "after v1.2.3, feat(scope): minor" 1.3.0
commit "fix: x"
expect "the strongest commit wins, not the last" 1.3.0
commit "refactor(api)!: rename fields"
expect "type(scope)!: major" 2.0.0

repo
commit "feat: a"
tag v1.0.0
commit "fix: b

BREAKING CHANGE: the job API changed"
expect "BREAKING CHANGE footer: major" 2.0.0

repo
commit "feat: a"
tag v2.4.0
commit "perf!: drop the old index"
expect "type!: major" 3.0.0

repo
commit "feat: a"
tag v2.4.0
commit "chore: mention BREAKING CHANGE: in passing"
expect "BREAKING CHANGE only counts as a footer line" 2.4.1
commit "feature: not a conventional type"
expect "feature: is not feat" 2.4.1
commit "fix: y

BREAKING-CHANGE: dash form"
expect "BREAKING-CHANGE footer: major" 3.0.0

repo
commit "feat: a"
tag v0.3.1
commit "fix: b"
expect "before 1.0.0, fix: patch" 0.3.2
commit "feat: c"
expect "before 1.0.0, feat: minor" 0.4.0
commit "feat!: d"
expect "before 1.0.0, breaking: minor, not 1.0.0" 0.4.0

repo
commit "feat!: breaking before any tag"
expect "no tags, breaking: minor (before 1.0.0)" 0.1.0

repo
commit "feat: a"
tag v1.9.0
commit "fix: b"
tag v1.10.0
commit "fix: c"
tag v1.10.1-rc.1
tag release-7
tag v2.0
expect "the highest strict vX.Y.Z tag, by version order" 1.10.1

repo
commit "feat: a"
tag v1.0.0
git checkout -q -b other
commit "fix: elsewhere"
tag v5.0.0
git checkout -q main
commit "fix: here"
expect "tags not reachable from HEAD are ignored" 1.0.1

repo
commit "feat: a"
tag v1.1.0
git checkout -q -b topic
commit "feat(worker): gang jobs"
commit "fix(worker): typo"
git checkout -q main
commit "docs: notes"
git merge -q --no-ff -m "Merge branch 'topic'" topic
expect "merge commits: the merged branch's feat counts" 1.2.0
tag v1.2.0
expect "merge then tag: nothing new" 1.2.0
git checkout -q -b topic2
commit "fix: small"
git checkout -q main
git merge -q --no-ff -m "Merge branch 'topic2'" topic2
expect "merge of a fix: patch" 1.2.1

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
