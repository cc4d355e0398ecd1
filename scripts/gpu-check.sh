#!/usr/bin/env bash
# The GPU device check, in one call: what needs a real NVIDIA GPU and cannot
# run in CI. Two halves:
#
#   scripts/gpu-check.sh build   here: builds bin/gpu-check/runner.test (the
#                                worker runtime's tests with -tags gpu)
#   scripts/gpu-check.sh run     on the GPU machine (root, repository root, the
#                                built bin/gpu-check carried there): finds the
#                                python3 that has CUDA torch, prints the GPU,
#                                then runs the matmul reference algorithm on
#                                the serve runtime (a warm process) as a root
#                                worker does (AIGW_INTERPRETERS, dropped to uid
#                                65534, CUDA_VISIBLE_DEVICES=0): its cold start,
#                                the warm p50 of 50 size-256 jobs on one process
#                                (torch imported once), heavy jobs' GFLOP/s and
#                                nvidia-smi's GPU busy % while heavy jobs run
#                                back to back (lines "GPU CHECK ...").
#   scripts/gpu-check.sh cpu     the same check without a GPU (any machine with
#                                a python3 that has torch, as root): matmul's
#                                CPU fallback, no GPU assigned,
#                                CUDA_VISIBLE_DEVICES empty. Builds first.
#
# A device session runs, in one call of its device tool, with bin/gpu-check
# carried: scripts/gpu-check.sh run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=bin/gpu-check

build() {
	mkdir -p "$out"
	(cd worker && go test -c -tags gpu -o "../$out/runner.test" ./internal/runner)
	echo "gpu-check: built $out/runner.test"
}

# find_python prints the first python3 whose torch imports (with CUDA when
# $1 is cuda).
find_python() {
	local want=$1 p
	local check='import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'
	[[ $want == cuda ]] || check='import torch'
	for p in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
		[[ -n "$p" && -x "$p" ]] || continue
		if "$p" -c "$check" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

check() {
	local mode=$1 py
	if [[ $mode == cuda ]]; then
		nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
	fi
	py=$(find_python "$mode") || {
		local what=torch
		[[ $mode != cuda ]] || what="CUDA torch"
		echo "gpu-check: no python3 with $what found (scripts/python-torch.sh)" >&2
		exit 1
	}
	[[ -x $out/runner.test ]] || {
		echo "gpu-check: $out/runner.test missing: run scripts/gpu-check.sh build first" >&2
		exit 1
	}
	echo "gpu-check: python $py, torch $("$py" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
	algos=$(mktemp -d /tmp/aigw-gpu-algorithms.XXXXXX)
	trap 'rm -rf "$algos"' EXIT
	cp -r algorithms/. "$algos/"
	chmod -R a+rX "$algos"
	chmod 755 "$algos"
	local cpu=0
	[[ $mode == cuda ]] || cpu=1
	(cd worker/internal/runner &&
		AIGW_GPU_ALGORITHMS="$algos" AIGW_GPU_PYTHON="$py" AIGW_GPU_CHECK_CPU=$cpu \
			"../../../$out/runner.test" -test.run 'TestGPU' -test.v -test.count=1 -test.timeout 9m)
}

case "${1:-}" in
build) build ;;
run) check cuda ;;
cpu)
	build
	check cpu
	;;
*)
	echo "usage: scripts/gpu-check.sh build|run|cpu" >&2
	exit 2
	;;
esac
