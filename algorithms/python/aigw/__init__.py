"""aigw: the Python SDK for aigw algorithms (standard library only).

One program runs both as an exec algorithm (a process per job) and under the
warm runtime (``runtime.type: serve``: a process that sets up once, then runs
job after job over the protocol of docs/serve-protocol.md)::

    import aigw

    def setup():
        import torch                      # once per process
        return torch.load("model.pt")     # the state every job gets

    def handler(input, ctx):
        if "prompt" not in input:
            raise aigw.InputError("input: prompt is required")  # not retried
        aigw.progress(0.5, "thinking")
        if ctx.canceled():
            return None                   # the worker discards it
        return {"answer": ctx.state.answer(input["prompt"])}

    if __name__ == "__main__":
        aigw.serve(setup, handler)

``serve`` picks the mode from the environment: with ``AIGW_SERVE=1`` (set by
the worker for ``runtime.type: serve``) it speaks the protocol on
stdin/stdout; without it, it reads one input on stdin and writes one output on
stdout, as the exec contract of algorithms/README.md says. In both modes it
first moves the process's stdout to stderr (file descriptor 1 itself, so
``print``, C extensions and child processes all write to the log), keeping
the real stdout for itself. Import heavy modules in ``setup``, not at the top
of the file: output before ``serve`` is called is not redirected.
"""

import json
import os
import queue
import sys
import threading
import time
import traceback

__all__ = ["serve", "progress", "log", "InputError", "Context"]

MAX_INPUT = 64 << 20  # bytes: the largest input (exec) or protocol line (serve)
STOP_GRACE = 5.0  # seconds a running handler gets once stdin has ended


class InputError(Exception):
    """A problem with the job's input: the attempt fails without a retry (the
    same input would fail again). Say what to fix in the message."""


class Context:
    """What a handler gets besides its input.

    Attributes: ``id`` (the job's ID; ``AIGW_JOB_ID`` in exec mode, "" when
    unset), ``attempt`` (from 1; 0 when unknown), ``output_dir`` (a fresh
    directory whose files become the job's artifacts; ``AIGW_OUTPUT_DIR`` in
    exec mode, None when unset), ``timeout`` (the job's limit in seconds, None
    when unknown; the worker enforces it) and ``state`` (what ``setup``
    returned).
    """

    def __init__(self, emit, state, id="", attempt=0, output_dir=None, timeout=None):
        self.id = id
        self.attempt = attempt
        self.output_dir = output_dir
        self.timeout = timeout
        self.state = state
        self._emit = emit
        self._canceled = threading.Event()
        self._done = False

    def canceled(self):
        """True once the job is canceled (or the process is stopping): return
        soon, with anything."""
        return self._canceled.is_set()

    def progress(self, fraction, message=""):
        """Reports how far the job is, fraction from 0 to 1 (clamped). Send a
        few a second at most."""
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            fraction = 0.0
        if fraction != fraction:  # NaN
            fraction = 0.0
        self._emit("progress", round(min(max(fraction, 0.0), 1.0), 6), str(message))

    def log(self, line):
        """Adds a line to the job's log."""
        self._emit("log", str(line).rstrip("\n"))


_current = None  # the running job's Context


def progress(fraction, message=""):
    """Reports the running job's progress (see Context.progress); outside a
    job it does nothing."""
    ctx = _current
    if ctx is not None:
        ctx.progress(fraction, message)


def log(line):
    """Adds a line to the running job's log; outside a job, writes it to
    stderr."""
    ctx = _current
    if ctx is not None:
        ctx.log(line)
    else:
        print(str(line).rstrip("\n"), file=sys.stderr, flush=True)


def serve(setup, handler):
    """Runs the program and exits: the warm runtime's protocol with
    AIGW_SERVE=1, else one exec-mode job. ``setup()`` runs once per process
    and returns the state (``ctx.state``); ``handler(input, ctx)`` runs each
    job and returns its output, any value ``json.dumps`` takes. An exception
    fails the attempt, retried per the job's policy unless it is an
    InputError. The exit status is 0 when done, 1 after an error, whose reason
    is the last line on stderr ("<program>: <error>")."""
    out = _take_stdout()
    if os.environ.get("AIGW_SERVE") == "1":
        code = _Server(setup, handler, out).run()
    else:
        code = _exec(setup, handler, out)
    sys.stderr.flush()
    sys.exit(code)


def _program():
    name = os.path.basename(sys.argv[0] or "algorithm")
    return name[:-3] if name.endswith(".py") else name


def _fail(message):
    print(f"{_program()}: {message}", file=sys.stderr, flush=True)
    return 1


def _take_stdout():
    """Returns a binary file on the process's stdout and points fd 1 (and
    sys.stdout) at stderr."""
    sys.stdout.flush()
    fd = os.dup(1)  # not inherited by child processes
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb")


def _error_message(e):
    """The message of a handler's exception, and whether it may be retried."""
    if isinstance(e, InputError):
        return str(e) or "input error", False
    text = str(e)
    return (f"{type(e).__name__}: {text}" if text else type(e).__name__), True


def _encode(output):
    """The output as one line of JSON; an output JSON cannot carry (NaN, a
    set, ...) is an error that is not retried."""
    try:
        return json.dumps(output, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"output: {e}") from None


def _exec(setup, handler, out):
    """One exec-mode job: input on stdin, output on out."""
    data = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        return _fail(f"input: larger than {MAX_INPUT >> 20} MiB")
    try:
        doc = json.loads(data)
    except ValueError as e:
        return _fail(f"input: not a JSON document: {e}")
    lock = threading.Lock()

    def emit(kind, *args):
        if kind == "progress":
            line = json.dumps({"progress": args[0], "message": args[1]})
        else:
            line = args[0]
        with lock:
            print(line, file=sys.stderr, flush=True)

    try:
        state = setup()
    except Exception as e:  # noqa: BLE001 (the reason goes to stderr)
        traceback.print_exc()
        return _fail(f"setup: {_error_message(e)[0]}")
    try:
        attempt = int(os.environ.get("AIGW_ATTEMPT", "0"))
    except ValueError:
        attempt = 0
    ctx = Context(emit, state, id=os.environ.get("AIGW_JOB_ID", ""), attempt=attempt,
                  output_dir=os.environ.get("AIGW_OUTPUT_DIR") or None)
    global _current
    _current = ctx
    try:
        line = _encode(handler(doc, ctx))
    except Exception as e:  # noqa: BLE001
        if not isinstance(e, InputError):
            traceback.print_exc()
        return _fail(_error_message(e)[0])
    finally:
        _current = None
    out.write(line.encode() + b"\n")
    out.flush()
    return 0


class _Server:
    """The warm runtime's protocol: set-up, ready, then job after job."""

    def __init__(self, setup, handler, out):
        self.setup, self.handler, self.out = setup, handler, out
        self.lock = threading.Lock()  # one protocol line at a time; guards running
        self.runs = queue.Queue()  # run messages; None once stdin ends
        self.running = None  # the running job's Context
        self.canceled = set()  # IDs of queued jobs canceled before they start
        self.eof = threading.Event()

    def send(self, msg, ctx=None):
        """Writes one message (a dict, or a line of JSON); with ctx, only
        while that job runs."""
        if isinstance(msg, dict):
            msg = json.dumps(msg, separators=(",", ":"))
        line = (msg + "\n").encode()
        with self.lock:
            if ctx is not None and ctx._done:
                return
            self.out.write(line)
            self.out.flush()

    def run(self):
        start = time.monotonic()
        try:
            state = self.setup()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            return _fail(f"setup: {_error_message(e)[0]}")
        print(f"aigw serve: ready after {time.monotonic() - start:.3f} s of set-up", file=sys.stderr, flush=True)
        self.send({"type": "ready"})
        threading.Thread(target=self.read, name="aigw-stdin", daemon=True).start()
        global _current
        while True:
            m = self.runs.get()
            if m is None:
                return 0
            job_id = str(m.get("id", ""))

            def emit(kind, *args, job_id=job_id):
                if kind == "progress":
                    msg = {"type": "progress", "id": job_id, "progress": args[0], "message": args[1]}
                else:
                    msg = {"type": "log", "id": job_id, "line": args[0]}
                self.send(msg, ctx)

            timeout = m.get("timeout_ms")
            ctx = Context(emit, state, id=job_id, attempt=m.get("attempt", 0),
                          output_dir=m.get("output_dir") or None,
                          timeout=timeout / 1000 if isinstance(timeout, (int, float)) and timeout > 0 else None)
            with self.lock:
                self.running = ctx
                if job_id in self.canceled or self.eof.is_set():
                    self.canceled.discard(job_id)
                    ctx._canceled.set()
            _current = ctx
            head = '{"type":"done","id":' + json.dumps(job_id)
            try:
                reply = head + ',"output":' + _encode(self.handler(m.get("input"), ctx)) + "}"
            except Exception as e:  # noqa: BLE001
                message, retryable = _error_message(e)
                if retryable:
                    ctx.log(traceback.format_exc())
                reply = head + ',"error":' + json.dumps({"message": message, "retryable": retryable}) + "}"
            _current = None
            with self.lock:
                ctx._done = True
                self.running = None
            if self.eof.is_set():
                return 0  # the worker stopped listening
            self.send(reply)

    def read(self):
        """Reads the worker's messages until stdin ends."""
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline(MAX_INPUT + 1)
            if not line:
                break
            try:
                m = json.loads(line)
            except ValueError as e:
                print(f"aigw serve: ignoring a message that is not JSON: {e}", file=sys.stderr, flush=True)
                continue
            if not isinstance(m, dict):
                continue
            if m.get("type") == "run":
                self.runs.put(m)
            elif m.get("type") == "cancel":
                with self.lock:
                    if self.running is not None and self.running.id == m.get("id"):
                        self.running._canceled.set()
                    elif len(self.canceled) < 1024:
                        self.canceled.add(m.get("id"))
        # stdin ended: the worker is stopping this process. Cancel the running
        # job, give it a few seconds, then exit.
        with self.lock:
            self.eof.set()
            if self.running is not None:
                self.running._canceled.set()
                timer = threading.Timer(STOP_GRACE, self.abandon)
                timer.daemon = True
                timer.start()
        self.runs.put(None)

    def abandon(self):
        with self.lock:
            if self.running is None:
                return
        print(f"aigw serve: stopping, and the running job did not return {STOP_GRACE:g} s after its cancel",
              file=sys.stderr, flush=True)
        os._exit(0)
