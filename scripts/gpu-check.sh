#!/usr/bin/env bash
# The GPU device check, in one call: what needs a real NVIDIA GPU and cannot
# run in CI. Two halves:
#
#   scripts/gpu-check.sh build   here: builds bin/gpu-check/runner.test (the
#                                worker runtime's tests with -tags gpu)
#   scripts/gpu-check.sh run     on the GPU machine (root, repository root, the
#                                built bin/gpu-check carried there): finds the
#                                python3 that has CUDA torch, prints the GPU,
#                                then runs the matmul reference algorithm
#                                through the exec runtime as a root worker
#                                does (AIGW_INTERPRETERS, dropped to uid 65534,
#                                CUDA_VISIBLE_DEVICES=0) and prints its figures
#                                (lines "GPU CHECK ...").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=bin/gpu-check

case "${1:-}" in
build)
	mkdir -p "$out"
	(cd worker && go test -c -tags gpu -o "../$out/runner.test" ./internal/runner)
	echo "gpu-check: built $out/runner.test"
	;;
run)
	nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
	py=""
	for p in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
		[[ -n "$p" && -x "$p" ]] || continue
		if "$p" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
			py=$p
			break
		fi
	done
	[[ -n "$py" ]] || {
		echo "gpu-check: no python3 with CUDA torch found" >&2
		exit 1
	}
	echo "gpu-check: python $py, torch $("$py" -c 'import torch; print(torch.__version__, torch.version.cuda)')"
	algos=$(mktemp -d /tmp/aigw-gpu-algorithms.XXXXXX)
	cp -r algorithms/. "$algos/"
	chmod -R a+rX "$algos"
	cd worker/internal/runner
	AIGW_GPU_ALGORITHMS="$algos" AIGW_GPU_PYTHON="$py" "../../../$out/runner.test" -test.run 'TestGPU' -test.v -test.count=1
	;;
*)
	echo "usage: scripts/gpu-check.sh build|run" >&2
	exit 2
	;;
esac
