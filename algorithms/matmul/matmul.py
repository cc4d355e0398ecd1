"""The matmul reference algorithm: batched matrix multiplication with PyTorch.

Reads on stdin

    {"size": n, "batch": b, "iterations": i, "dtype": "float32" | "float16",
     "seed": s}                                   (all but size optional)

makes a batch of b random n×n matrices X and B on the device from a generator
seeded with s, then runs i steps of X ← normalise(torch.bmm(X, B)), timing them
after one warm-up step, and writes on stdout

    {"device": "cuda:0 (<GPU name>)" | "cpu", "torch": "<version>",
     "dtype": "<dtype computed in>", "size": n, "batch": b, "iterations": i,
     "seed": s, "gflops": <measured>, "seconds": <timed steps>,
     "checksum": <sum of the final X>, "cuda_visible_devices": "<value>" | null,
     "threads": <CPU threads>, "note": "<why dtype differs>" (only if it does)}

It uses CUDA when torch.cuda.is_available() (which respects
CUDA_VISIBLE_DEVICES: the worker sets it to the GPUs it assigned, empty for
none) and falls back to the CPU otherwise; float16 on the CPU is computed in
float32 and the output says so. The same input on the same device and torch
build gives the same checksum. Progress goes to stderr as
{"progress": p, "message": "..."} lines, at most two a second. When
AIGW_OUTPUT_DIR is set, result.json there holds the output plus the checksum
of each matrix of the batch. Bad input exits 1 with the reason on stderr.
"""

import json
import math
import os
import sys
import time

MAX_SIZE = 16384
MAX_BATCH = 4096
MAX_ITERATIONS = 100000
MAX_ELEMENTS = 1 << 28  # batch × size², per matrix stack (1 GiB in float32)
MAX_SEED = (1 << 63) - 1
DTYPES = ("float32", "float16")
PROGRESS_EVERY = 0.5  # seconds

FIELDS = {"size", "batch", "iterations", "dtype", "seed"}


class InputError(Exception):
    """The input breaks a rule; the message says which."""


def progress(p, message):
    line = json.dumps({"progress": round(min(max(p, 0.0), 1.0), 4), "message": message})
    print(line, file=sys.stderr, flush=True)


def integer(doc, name, default, low, high):
    v = doc.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise InputError(f"{name} must be an integer, got {json.dumps(v)}")
    if not low <= v <= high:
        raise InputError(f"{name} = {v}: want {low}-{high}")
    return v


def parse(text):
    """Decodes and validates the input document; returns the settings."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InputError(f"not a JSON document: {e}") from None
    if not isinstance(doc, dict):
        raise InputError("want a JSON object")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r}: want {', '.join(sorted(FIELDS))}")
    if "size" not in doc:
        raise InputError("size is required")
    s = {
        "size": integer(doc, "size", None, 1, MAX_SIZE),
        "batch": integer(doc, "batch", 1, 1, MAX_BATCH),
        "iterations": integer(doc, "iterations", 10, 1, MAX_ITERATIONS),
        "seed": integer(doc, "seed", 0, 0, MAX_SEED),
        "dtype": doc.get("dtype", "float32"),
    }
    if s["dtype"] not in DTYPES:
        raise InputError(f"dtype {json.dumps(s['dtype'])}: want one of {', '.join(DTYPES)}")
    elements = s["batch"] * s["size"] * s["size"]
    if elements > MAX_ELEMENTS:
        raise InputError(
            f"batch × size² = {s['batch']} × {s['size']}² = {elements} elements, at most {MAX_ELEMENTS}"
        )
    return s


def compute(s):
    """Runs the benchmark for settings s; returns (output, per-matrix checksums)."""
    import torch

    note = None
    if torch.cuda.is_available():
        dev = torch.device("cuda", 0)
        device_name = f"cuda:0 ({torch.cuda.get_device_name(dev)})"
        dtype = getattr(torch, s["dtype"])
    else:
        dev = torch.device("cpu")
        device_name = "cpu"
        dtype = torch.float32
        if s["dtype"] == "float16":
            note = "float16 requested: no CUDA device, computed in float32 on the CPU"

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    n, b, iters = s["size"], s["batch"], s["iterations"]
    progress(0, f"{b}×{n}×{n} {str(dtype).removeprefix('torch.')} on {device_name}, {iters} iterations")
    gen = torch.Generator(device=dev)
    gen.manual_seed(s["seed"])
    # Entries of variance 1/n keep the norm of X roughly constant under X·B; the
    # normalisation each step keeps float16 from drifting over many steps.
    x = torch.randn((b, n, n), generator=gen, device=dev, dtype=dtype)
    m = torch.randn((b, n, n), generator=gen, device=dev, dtype=dtype) / math.sqrt(n)
    out = torch.empty_like(x)
    target = math.sqrt(n)  # Frobenius norm of X kept at √n: entries of size ~1/√n

    def step(x, out):
        torch.bmm(x, m, out=out)
        norm = torch.linalg.vector_norm(out, dim=(1, 2), keepdim=True)
        out.mul_(target / norm.clamp_min(1e-12))
        return out, x

    with torch.no_grad():
        x, out = step(x, out)  # warm-up: kernels, allocator, thread pool
        sync()
        start = last = time.perf_counter()
        for i in range(1, iters + 1):
            x, out = step(x, out)
            now = time.perf_counter()
            if now - last >= PROGRESS_EVERY and i < iters:
                sync()
                last = time.perf_counter()
                progress(i / iters, f"iteration {i}/{iters}, {last - start:.2f} s")
        sync()
        seconds = time.perf_counter() - start
        per_matrix = x.double().sum(dim=(1, 2))

    flops = 2.0 * b * n ** 3 * iters
    result = {
        "device": device_name,
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "size": n,
        "batch": b,
        "iterations": iters,
        "seed": s["seed"],
        "gflops": round(flops / seconds / 1e9, 3) if seconds > 0 else None,
        "seconds": round(seconds, 9),
        "checksum": float(per_matrix.sum()),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": torch.get_num_threads(),
    }
    if note:
        result["note"] = note
    return result, [float(v) for v in per_matrix.cpu()]


def main():
    try:
        s = parse(sys.stdin.read())
    except InputError as e:
        print(f"matmul: input: {e}", file=sys.stderr)
        return 1
    try:
        import torch  # noqa: F401  (checked here for a clear message)
    except ImportError:
        print(
            f"matmul: PyTorch is not importable by {sys.executable}: run scripts/python-torch.sh",
            file=sys.stderr,
        )
        return 1
    result, per_matrix = compute(s)
    out_dir = os.environ.get("AIGW_OUTPUT_DIR")
    if out_dir:
        with open(os.path.join(out_dir, "result.json"), "w", encoding="utf-8") as f:
            json.dump({**result, "batch_checksums": per_matrix}, f, indent=1)
            f.write("\n")
    progress(1, f"{result['gflops']} GFLOP/s over {result['seconds']:.3f} s on {result['device']}")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
