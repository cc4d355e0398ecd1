"""The matmul reference algorithm: batched matrix multiplication with PyTorch.

Its input is

    {"size": n, "batch": b, "iterations": i, "dtype": "float32" | "float16",
     "seed": s}                                   (all but size optional)

makes a batch of b random n×n matrices X and B on the device from a generator
seeded with s, then runs i steps of X ← normalise(torch.bmm(X, B)), timing them
after one warm-up step; its output is

    {"device": "cuda:0 (<GPU name>)" | "cpu", "torch": "<version>",
     "dtype": "<dtype computed in>", "size": n, "batch": b, "iterations": i,
     "seed": s, "gflops": <measured>, "seconds": <timed steps>,
     "checksum": <sum of the final X>, "cuda_visible_devices": "<value>" | null,
     "threads": <CPU threads>, "note": "<why dtype differs>" (only if it does)}

It uses CUDA when torch.cuda.is_available() (which respects
CUDA_VISIBLE_DEVICES: the worker sets it to the GPUs it assigned, empty for
none) and falls back to the CPU otherwise; float16 on the CPU is computed in
float32 and the output says so. The same input on the same device and torch
build gives the same checksum. Progress is reported at most twice a second; a
cancel stops the iterations. When the job has an output directory, result.json
there holds the output plus the checksum of each matrix of the batch.

Built on the Python SDK (../python/aigw): under the warm runtime
(runtime.type serve, AIGW_SERVE=1) set-up imports torch and initialises the
device once per process, and each job only computes; run without AIGW_SERVE
it is an exec program (input on stdin, output on stdout, progress and the
reason of a bad input on stderr, exit 1 on a bad input).
"""

import json
import math
import os
import sys
import time

# The SDK lives in ../python (the algorithms dir's python/aigw).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import aigw  # noqa: E402

MAX_SIZE = 16384
MAX_BATCH = 4096
MAX_ITERATIONS = 100000
MAX_ELEMENTS = 1 << 28  # batch × size², per matrix stack (1 GiB in float32)
MAX_SEED = (1 << 63) - 1
DTYPES = ("float32", "float16")
PROGRESS_EVERY = 0.5  # seconds

FIELDS = {"size", "batch", "iterations", "dtype", "seed"}


def bad(message):
    """An input error: the job fails without a retry."""
    return aigw.InputError(f"input: {message}")


class Canceled(Exception):
    """The job was canceled while it ran."""


def integer(doc, name, default, low, high):
    v = doc.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise bad(f"{name} must be an integer, got {json.dumps(v)}")
    if not low <= v <= high:
        raise bad(f"{name} = {v}: want {low}-{high}")
    return v


def validate(doc):
    """Validates the input document; returns the settings."""
    if not isinstance(doc, dict):
        raise bad("want a JSON object")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise bad(f"unknown field {unknown[0]!r}: want {', '.join(sorted(FIELDS))}")
    if "size" not in doc:
        raise bad("size is required")
    s = {
        "size": integer(doc, "size", None, 1, MAX_SIZE),
        "batch": integer(doc, "batch", 1, 1, MAX_BATCH),
        "iterations": integer(doc, "iterations", 10, 1, MAX_ITERATIONS),
        "seed": integer(doc, "seed", 0, 0, MAX_SEED),
        "dtype": doc.get("dtype", "float32"),
    }
    if s["dtype"] not in DTYPES:
        raise bad(f"dtype {json.dumps(s['dtype'])}: want one of {', '.join(DTYPES)}")
    elements = s["batch"] * s["size"] * s["size"]
    if elements > MAX_ELEMENTS:
        raise bad(
            f"batch × size² = {s['batch']} × {s['size']}² = {elements} elements, at most {MAX_ELEMENTS}"
        )
    return s


class Device:
    """What set-up prepares once per process: torch and the device."""

    def __init__(self):
        try:
            import torch
        except ImportError:
            raise RuntimeError(f"PyTorch is not importable by {sys.executable}: run scripts/python-torch.sh") from None
        self.torch = torch
        if torch.cuda.is_available():
            self.dev = torch.device("cuda", 0)
            self.name = f"cuda:0 ({torch.cuda.get_device_name(self.dev)})"
        else:
            self.dev = torch.device("cpu")
            self.name = "cpu"
        # Warm-up: CUDA context, cuBLAS handles, kernels, the thread pool.
        with torch.no_grad():
            for dtype in (torch.float32, torch.float16) if self.dev.type == "cuda" else (torch.float32,):
                a = torch.ones((2, 64, 64), device=self.dev, dtype=dtype)
                torch.bmm(a, a)
        self.sync()

    def sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)


def compute(d, s, canceled=lambda: False):
    """Runs the benchmark for settings s on Device d; returns (output,
    per-matrix checksums). Raises Canceled once canceled() says so."""
    torch, dev, device_name, sync = d.torch, d.dev, d.name, d.sync
    note = None
    if dev.type == "cuda":
        dtype = getattr(torch, s["dtype"])
    else:
        dtype = torch.float32
        if s["dtype"] == "float16":
            note = "float16 requested: no CUDA device, computed in float32 on the CPU"

    n, b, iters = s["size"], s["batch"], s["iterations"]
    aigw.progress(0, f"{b}×{n}×{n} {str(dtype).removeprefix('torch.')} on {device_name}, {iters} iterations")
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
            if canceled():
                raise Canceled(f"canceled after {i - 1} of {iters} iterations")
            x, out = step(x, out)
            now = time.perf_counter()
            if now - last >= PROGRESS_EVERY and i < iters:
                sync()
                last = time.perf_counter()
                aigw.progress(i / iters, f"iteration {i}/{iters}, {last - start:.2f} s")
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


def setup():
    return Device()


def handler(doc, ctx):
    s = validate(doc)
    result, per_matrix = compute(ctx.state, s, ctx.canceled)
    if ctx.output_dir:
        with open(os.path.join(ctx.output_dir, "result.json"), "w", encoding="utf-8") as f:
            json.dump({**result, "batch_checksums": per_matrix}, f, indent=1)
            f.write("\n")
    aigw.progress(1, f"{result['gflops']} GFLOP/s over {result['seconds']:.3f} s on {result['device']}")
    return result


if __name__ == "__main__":
    aigw.serve(setup, handler)
