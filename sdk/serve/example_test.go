package serve_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/aigw/aigw/sdk/serve"
)

// A warm algorithm: set-up builds a table once; each job looks words up in it.
// Run with AIGW_SERVE=1 it serves job after job; without, it runs one job
// read from stdin.
func ExampleMain() {
	serve.Main(func(ctx context.Context) (serve.Handler, error) {
		table := map[string]string{"hello": "bonjour", "cat": "chat"} // once per process
		return func(ctx context.Context, job *serve.Job) (any, error) {
			var in struct {
				Words []string `json:"words"`
			}
			if err := job.Decode(&in); err != nil {
				return nil, err // an input error: the job fails without a retry
			}
			out := make([]string, len(in.Words))
			for i, w := range in.Words {
				if ctx.Err() != nil {
					return nil, ctx.Err() // canceled
				}
				t, ok := table[strings.ToLower(w)]
				if !ok {
					return nil, serve.InputError(fmt.Errorf("input: words[%d] = %q: not in the table", i, w))
				}
				out[i] = t
				job.Progress(float64(i+1)/float64(len(in.Words)), w)
			}
			return map[string]any{"words": out}, nil
		}, nil
	})
}
