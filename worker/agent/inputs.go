package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/runner"
)

// fetchInputs fetches the files j's input refers to ({"$file": …}) into a
// directory of this attempt and returns the input the run gets, with each
// reference replaced by {"path", "size", "sha256"}, and a cleanup that
// removes the files. A fetch that fails is the attempt's failure: code
// input_error, retried only when the source did not answer.
func (c *core) fetchInputs(ctx context.Context, j *job.Job, progress func(events.Progress)) (json.RawMessage, func(), *runner.Failure) {
	none := func() {}
	if c.inputs == nil || !inputfiles.Has(j.Input) {
		return j.Input, none, nil
	}
	base := c.cfg.WorkDir
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "aigw-inputs", j.ID+"-"+strconv.Itoa(j.Attempt))
	cleanup := func() { _ = os.RemoveAll(dir) }
	if progress != nil {
		progress(events.Progress{Progress: 0, Message: "fetching input files", At: time.Now().UTC()})
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, none, &runner.Failure{Code: job.CodeInput, Message: err.Error(), Retryable: true}
	}
	in, err := c.inputs.Fetch(ctx, j, dir)
	if err != nil {
		cleanup()
		var fe *inputs.Error
		retry := errors.As(err, &fe) && fe.Retryable
		c.log.Info("input files not fetched", "job_id", j.ID, "attempt", j.Attempt, "retryable", retry, "err", err)
		if ctx.Err() != nil {
			return nil, none, &runner.Failure{Code: runner.CodeStopped, Message: fmt.Sprintf("stopped while fetching input files: %v", err)}
		}
		return nil, none, &runner.Failure{Code: job.CodeInput, Message: err.Error(), Retryable: retry}
	}
	return in, cleanup, nil
}
