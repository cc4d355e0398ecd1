package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// jobView is the part of a job the CLI shows.
type jobView struct {
	ID        string          `json:"id"`
	Algorithm string          `json:"algorithm"`
	Version   string          `json:"version"`
	Pool      string          `json:"pool"`
	State     string          `json:"state"`
	Attempt   int             `json:"attempt"`
	Output    json.RawMessage `json:"output"`
	Error     *struct{ Code, Message string }
	Artifacts []struct {
		Name string
		Size int64
	} `json:"artifacts"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Position   *int64     `json:"queue_position"`
}

// ended is the error of a job that finished without succeeding (nil otherwise).
func (j jobView) ended() error {
	switch j.State {
	case "failed", "canceled", "expired":
		e := &jobEndedError{id: j.ID, state: j.State}
		if j.Error != nil {
			e.msg = j.Error.Code + ": " + j.Error.Message
		}
		return e
	}
	return nil
}

func (j jobView) duration() string {
	if j.StartedAt == nil {
		return ""
	}
	end := time.Now()
	if j.FinishedAt != nil {
		end = *j.FinishedAt
	}
	return end.Sub(*j.StartedAt).Round(time.Millisecond).String()
}

func (a *app) runCmd() *cobra.Command {
	var input, version, priority, key, ttl, execTimeout string
	var wait bool
	var timeout time.Duration
	var retries int
	c := &cobra.Command{
		Use:   "run ALGORITHM --input JSON|@FILE|- [--wait]",
		Short: "Submit a job; with --wait, follow it (progress bar, log lines) and print its output",
		Example: `  aigw run echo --input '{"message":"hi"}' --wait
  aigw run kmeans --input @points.json --wait --json > result.json
  aigw run echo --input - < input.json`,
		Args: exactArgs(1, "an algorithm name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.readInput(input)
			if err != nil {
				return err
			}
			switch priority {
			case "", "high", "normal", "low":
			default:
				return usageErrorf("--priority %q: want high, normal or low", priority)
			}
			cl, err := a.api()
			if err != nil {
				return err
			}
			body := map[string]any{"input": in}
			if version != "" {
				body["version"] = version
			}
			policy := map[string]any{}
			for k, v := range map[string]string{"priority": priority, "ttl": ttl, "execution_timeout": execTimeout} {
				if v != "" {
					policy[k] = v
				}
			}
			if retries >= 0 {
				policy["max_retries"] = retries
			}
			if len(policy) > 0 {
				body["policy"] = policy
			}
			var hdr []string
			if key != "" {
				hdr = append(hdr, "Idempotency-Key", key)
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), false, "POST", "/v1/algorithms/"+url.PathEscape(args[0])+"/jobs", body, &raw, hdr...); err != nil {
				return err
			}
			var j jobView
			if err := json.Unmarshal(raw, &j); err != nil {
				return err
			}
			if !wait {
				if a.json {
					return a.printJSON(raw)
				}
				fmt.Fprintf(a.stdout, "%s %s\n", j.ID, j.State)
				return nil
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			return a.follow(ctx, cl, j.ID, true)
		},
	}
	c.Flags().StringVarP(&input, "input", "i", "", "the job's input: JSON, @file.json, or - for standard input")
	c.Flags().StringVar(&version, "version", "", "the algorithm's version (default: the latest)")
	c.Flags().StringVar(&priority, "priority", "", "high, normal or low")
	c.Flags().StringVar(&ttl, "ttl", "", "policy: how long the job may wait in the queue (e.g. 10m)")
	c.Flags().StringVar(&execTimeout, "execution-timeout", "", "policy: the longest one attempt may run (e.g. 30s)")
	c.Flags().IntVar(&retries, "max-retries", -1, "policy: automatic retries after a failed attempt (default: the algorithm's)")
	c.Flags().StringVar(&key, "idempotency-key", "", "submit once per key: a repeat returns the first job")
	c.Flags().BoolVarP(&wait, "wait", "w", false, "follow the job to its end and print its output")
	c.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, stop waiting after this long (e.g. 10m; default: no limit)")
	return c
}

func (a *app) jobsCmd() *cobra.Command {
	c := &cobra.Command{Use: "jobs", Aliases: []string{"job"}, Short: "Your jobs: list, get, cancel, retry, logs, watch"}
	var state, algo, since string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List your jobs, newest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			if state != "" {
				q.Set("state", state)
			}
			if algo != "" {
				q.Set("algorithm", algo)
			}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return err
				}
				q.Set("since", t.UTC().Format(time.RFC3339))
			}
			if limit != 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			cl, err := a.api()
			if err != nil {
				return err
			}
			path := "/v1/jobs"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), false, "GET", path, nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			var out struct {
				Jobs       []jobView
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			rows := [][]string{}
			for _, j := range out.Jobs {
				rows = append(rows, []string{j.ID, j.Algorithm, j.State, strconv.Itoa(j.Attempt),
					j.CreatedAt.Local().Format("2006-01-02 15:04:05"), j.duration()})
			}
			return a.table([]string{"ID", "ALGORITHM", "STATE", "ATTEMPT", "CREATED", "RAN"}, rows)
		},
	}
	list.Flags().StringVar(&state, "state", "", "only jobs in this state (queued, running, succeeded, failed, canceled, expired)")
	list.Flags().StringVar(&algo, "algorithm", "", "only jobs of this algorithm")
	list.Flags().StringVar(&since, "since", "", "only jobs created since: an RFC 3339 time or a duration ago (e.g. 1h)")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (1-500)")
	c.AddCommand(list)

	c.AddCommand(&cobra.Command{
		Use:   "get ID",
		Short: "Show a job: state, attempt, output, error",
		Args:  exactArgs(1, "a job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), false, "GET", "/v1/jobs/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			return a.showJob(raw, false)
		},
	})
	for _, verb := range []struct{ name, short string }{
		{"cancel", "Cancel a queued or running job"},
		{"retry", "Run a failed or expired job again"},
	} {
		c.AddCommand(&cobra.Command{
			Use:   verb.name + " ID",
			Short: verb.short,
			Args:  exactArgs(1, "a job id"),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := a.api()
				if err != nil {
					return err
				}
				var raw json.RawMessage
				if err := cl.Do(cmd.Context(), false, "POST", "/v1/jobs/"+url.PathEscape(args[0])+"/"+verb.name, nil, &raw); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(raw)
				}
				var j jobView
				if err := json.Unmarshal(raw, &j); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s %s\n", j.ID, j.State)
				return nil
			},
		})
	}
	c.AddCommand(&cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's log lines, following it until it ends",
		Args:  exactArgs(1, "a job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			return cl.Events(cmd.Context(), args[0], "", func(ev Event) error {
				if a.json {
					b, _ := json.Marshal(map[string]any{"id": ev.ID, "event": ev.Type, "data": ev.Data})
					fmt.Fprintln(a.stdout, string(b))
					return nil
				}
				if ev.Type == "log" {
					var l struct{ Lines []string }
					_ = json.Unmarshal(ev.Data, &l)
					for _, line := range l.Lines {
						fmt.Fprintln(a.stdout, line)
					}
				}
				return nil
			})
		},
	})
	var timeout time.Duration
	watch := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job: progress bar, log lines, then its output",
		Args:  exactArgs(1, "a job id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd.Context(), timeout)
			defer cancel()
			return a.follow(ctx, cl, args[0], false)
		},
	}
	watch.Flags().DurationVar(&timeout, "timeout", 0, "stop watching after this long (default: no limit)")
	c.AddCommand(watch)
	return c
}

// parseSince reads an RFC 3339 time or a duration ago.
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usageErrorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (1h)", s)
}

// showJob prints a job (raw: the API's JSON): JSON with --json, else a
// summary and its output. A job that did not succeed is its error.
func (a *app) showJob(raw json.RawMessage, outputOnly bool) error {
	var j jobView
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	if a.json {
		if err := a.printJSON(raw); err != nil {
			return err
		}
		return j.ended()
	}
	if !outputOnly {
		fmt.Fprintf(a.stdout, "id:         %s\nalgorithm:  %s %s\npool:       %s\nstate:      %s\nattempt:    %d\ncreated:    %s\n",
			j.ID, j.Algorithm, j.Version, j.Pool, j.State, j.Attempt, j.CreatedAt.Local().Format(time.RFC3339))
		if j.Position != nil {
			fmt.Fprintf(a.stdout, "position:   %d in the queue\n", *j.Position)
		}
		if d := j.duration(); d != "" {
			fmt.Fprintf(a.stdout, "ran:        %s\n", d)
		}
		if j.Error != nil {
			fmt.Fprintf(a.stdout, "error:      %s: %s\n", j.Error.Code, j.Error.Message)
		}
		for _, art := range j.Artifacts {
			fmt.Fprintf(a.stdout, "artifact:   %s (%d bytes)\n", art.Name, art.Size)
		}
		if len(j.Output) > 0 {
			fmt.Fprintln(a.stdout, "output:")
		}
	}
	if len(j.Output) > 0 && (j.State == "succeeded" || !outputOnly) {
		if err := a.printJSON(j.Output); err != nil {
			return err
		}
	}
	return j.ended()
}

// follow shows a job's progress and log lines as they come (stderr), then
// prints the finished job (stdout): its output for people, the job with
// --json. fresh: the job was just submitted (no summary, the output alone).
func (a *app) follow(ctx context.Context, cl *Client, id string, fresh bool) error {
	p := newProgress(a.stderr, a.tty, id)
	err := cl.Events(ctx, id, "", func(ev Event) error {
		switch ev.Type {
		case "state":
			var s struct {
				State   string
				Attempt int
				Worker  string
			}
			_ = json.Unmarshal(ev.Data, &s)
			p.state(s.State, s.Attempt, s.Worker)
		case "progress":
			var pr struct {
				Progress float64
				Message  string
			}
			_ = json.Unmarshal(ev.Data, &pr)
			p.progress(pr.Progress, pr.Message)
		case "log":
			var l struct{ Lines []string }
			_ = json.Unmarshal(ev.Data, &l)
			p.log(l.Lines)
		case "gap":
			p.log([]string{"(some events were dropped: the stream goes on from the oldest kept)"})
		}
		return nil
	})
	p.done()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("stopped waiting for job %s (still running; aigw jobs watch %s)", id, id)
		}
		return err
	}
	var raw json.RawMessage
	// The stream's end may come just before the record's: read it afresh.
	if err := cl.Do(context.WithoutCancel(ctx), false, "GET", "/v1/jobs/"+url.PathEscape(id), nil, &raw); err != nil {
		return err
	}
	return a.showJob(raw, fresh)
}

// progress draws a job's progress on stderr: a bar on a terminal, plain
// lines otherwise (a log file, a CI job).
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	id    string
	last  int
	shown string // the state shown
}

func newProgress(w io.Writer, tty bool, id string) *progress {
	p := &progress{w: w, id: id, last: -1}
	if tty {
		p.bar = progressbar.NewOptions(100, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(id+" queued"),
			progressbar.OptionSetWidth(30), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(true))
		_ = p.bar.RenderBlank()
	}
	return p
}

func (p *progress) state(s string, attempt int, worker string) {
	if s == p.shown {
		return
	}
	p.shown = s
	desc := fmt.Sprintf("%s %s", p.id, s)
	if attempt > 1 {
		desc += fmt.Sprintf(" (attempt %d)", attempt)
	}
	if worker != "" && s == "running" {
		desc += " on " + worker
	}
	if p.bar != nil {
		p.bar.Describe(desc)
		if s == "succeeded" {
			_ = p.bar.Set(100)
		}
		return
	}
	fmt.Fprintln(p.w, desc)
}

func (p *progress) progress(f float64, msg string) {
	pct := int(f*100 + 0.5)
	pct = max(0, min(pct, 100))
	if p.bar != nil {
		_ = p.bar.Set(pct)
		if msg != "" {
			p.bar.Describe(p.id + " " + msg)
		}
		return
	}
	if pct == p.last {
		return
	}
	p.last = pct
	line := fmt.Sprintf("%s %3d%%", p.id, pct)
	if msg != "" {
		line += " " + msg
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) log(lines []string) {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
	for _, l := range lines {
		fmt.Fprintln(p.w, strings.TrimRight(l, "\n"))
	}
	if p.bar != nil {
		_ = p.bar.RenderBlank()
	}
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}
