// Command aigw-echo is the echo reference algorithm: it reads
// {"message": string, "sleep_ms": int (optional)}, sleeps first (a cancel
// ends the sleep), and returns {"message": ...}. Tests, demos and health
// checks use it. Built on the Go SDK (sdk/serve), it runs under the warm
// runtime (AIGW_SERVE=1, definition echo) and as an exec program (echo-exec).
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aigw/aigw/sdk/serve"
)

type input struct {
	Message *string `json:"message"`
	SleepMS int64   `json:"sleep_ms"`
}

func main() { serve.Main(setup) }

// setup has nothing to load: echo is ready at once.
func setup(context.Context) (serve.Handler, error) { return echo, nil }

func echo(ctx context.Context, job *serve.Job) (any, error) {
	var in input
	if err := job.Decode(&in); err != nil {
		return nil, err
	}
	if in.Message == nil {
		return nil, serve.InputError(errors.New("input: message is required"))
	}
	if in.SleepMS < 0 || in.SleepMS > 3_600_000 {
		return nil, serve.InputError(errors.New("input: sleep_ms must be 0-3600000"))
	}
	if in.SleepMS > 0 {
		job.Progress(0, fmt.Sprintf("sleeping %d ms", in.SleepMS))
		t := time.NewTimer(time.Duration(in.SleepMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return map[string]string{"message": *in.Message}, nil
}
