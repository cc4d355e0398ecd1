"""A test program of the aigw SDK (see ../sdk_test.go)."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import aigw  # noqa: E402

aigw.STOP_GRACE = 0.3


def setup():
    print("setup: print")
    subprocess.run(["/bin/sh", "-c", "echo setup: child process"], check=True)
    os.write(1, b"setup: fd 1\n")
    aigw.progress(0.1, "ignored outside a job")
    if os.environ.get("TEST_FAIL_SETUP"):
        raise RuntimeError("no model here")
    return {"jobs": 0, "pid": os.getpid()}


def handler(input, ctx):
    ctx.state["jobs"] += 1
    op = input.get("op")
    print("handler: print", op)
    if op == "echo":
        if ctx.output_dir:
            with open(os.path.join(ctx.output_dir, "artifact.txt"), "w", encoding="utf-8") as f:
                f.write(input.get("message", ""))
        aigw.progress(0.5, "half way")
        aigw.log("a log line\n")
        ctx.progress(7, "clamped")
        return {"message": input.get("message", ""), "jobs": ctx.state["jobs"], "pid": ctx.state["pid"],
                "id": ctx.id, "attempt": ctx.attempt, "timeout_ms": round(ctx.timeout * 1000) if ctx.timeout else 0}
    if op == "fail":
        raise RuntimeError("boom")
    if op == "input-error":
        raise aigw.InputError(f"input: message {input.get('message')!r} is not allowed")
    if op == "nan":
        return {"x": float("nan")}
    if op == "block":  # until canceled
        aigw.progress(0, "blocking")
        while not ctx.canceled():
            time.sleep(0.005)
        return {"canceled": True}
    if op == "stuck":  # ignores its cancel
        aigw.progress(0, "stuck")
        time.sleep(3600)
    raise aigw.InputError(f"input: op {op!r} unknown")


if __name__ == "__main__":
    aigw.serve(setup, handler)
