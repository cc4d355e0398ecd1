package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
)

// Exec runs one job as an exec algorithm: set-up, then the handler on the
// input read from stdin, whose output it writes on stdout as one line of
// JSON. Progress goes to stderr as {"progress": p, "message": m} lines and
// log lines as they are. The job's ID, attempt and output directory come from
// AIGW_JOB_ID, AIGW_ATTEMPT and AIGW_OUTPUT_DIR. It returns the set-up's, the
// input's or the handler's error; nothing is written on stdout then.
func Exec(ctx context.Context, setup Setup, stdin io.Reader, stdout, stderr io.Writer) error {
	input, err := readInput(stdin)
	if err != nil {
		return err
	}
	handler, err := setup(ctx)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var mu sync.Mutex // one line at a time on stderr
	line := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = stderr.Write(append(b, '\n'))
	}
	attempt, _ := strconv.Atoi(os.Getenv("AIGW_ATTEMPT"))
	job := &Job{
		ID:        os.Getenv("AIGW_JOB_ID"),
		Attempt:   attempt,
		Input:     input,
		OutputDir: os.Getenv("AIGW_OUTPUT_DIR"),
		progress: func(fraction float64, message string) {
			b, _ := json.Marshal(struct {
				Progress float64 `json:"progress"`
				Message  string  `json:"message"`
			}{fraction, message})
			line(b)
		},
		log: func(s string) { line([]byte(s)) },
	}
	out, err := call(ctx, handler, job)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(out, '\n'))
	return err
}

// call runs the handler and encodes its output; a panic becomes an error.
func call(ctx context.Context, handler Handler, job *Job) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			job.Log(fmt.Sprintf("panic: %v\n%s", p, debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	v, err := handler(ctx, job)
	if err != nil {
		return nil, err
	}
	out, err = json.Marshal(v)
	if err != nil {
		return nil, InputError(fmt.Errorf("output: %w", err))
	}
	return out, nil
}
