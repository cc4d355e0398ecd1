package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) poolsCmd() *cobra.Command {
	var operator bool
	c := &cobra.Command{
		Use:     "pools",
		Aliases: []string{"pool"},
		Short:   "The worker pools: workers, GPUs, slots and queues",
		Long: `pools lists the pools. A tenant sees each pool's capacity and its own queued and
running jobs; with --operator (an operator token) the workers and the whole queue.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), operator, "GET", "/v1/pools", nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			type counts struct{ Total, Free, Busy int }
			var out struct {
				Pools []struct {
					Name    string
					Workers json.RawMessage
					GPUs    counts `json:"gpus"`
					Slots   counts
					Jobs    *struct{ Queued, Running int64 }
					Queue   *struct {
						Depth, Running, Delayed, Dead int64
						OldestWaitMS                  int64 `json:"oldest_wait_ms"`
					}
				}
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			rows := [][]string{}
			for _, p := range out.Pools {
				workers := string(p.Workers)
				var list []json.RawMessage
				if json.Unmarshal(p.Workers, &list) == nil {
					workers = strconv.Itoa(len(list))
				}
				row := []string{p.Name, workers, fmt.Sprintf("%d/%d", p.GPUs.Free, p.GPUs.Total), fmt.Sprintf("%d/%d", p.Slots.Free, p.Slots.Total)}
				switch {
				case p.Queue != nil:
					row = append(row, fmt.Sprint(p.Queue.Depth), fmt.Sprint(p.Queue.Running), fmt.Sprint(p.Queue.Dead),
						(time.Duration(p.Queue.OldestWaitMS) * time.Millisecond).String())
				case p.Jobs != nil:
					row = append(row, fmt.Sprint(p.Jobs.Queued), fmt.Sprint(p.Jobs.Running), "", "")
				}
				rows = append(rows, row)
			}
			return a.table([]string{"POOL", "WORKERS", "GPUS FREE", "SLOTS FREE", "QUEUED", "RUNNING", "DEAD", "OLDEST WAIT"}, rows)
		},
	}
	c.Flags().BoolVar(&operator, "operator", false, "use an operator token: every worker and the whole queue")
	return c
}

func (a *app) deadLettersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "dead-letters",
		Aliases: []string{"dlq"},
		Short:   "A pool's dead letters: list, redrive (operator)",
		Long: `Jobs a pool gave up on (failed for good with a retryable error, or delivered
too often) wait in its dead-letter stream. An operator lists them and redrives
one or all: the job is queued again for its next attempt. Needs an operator
token (AIGW_ADMIN_TOKEN or aigw login --admin-token-stdin).`,
	}
	var limit int
	list := &cobra.Command{
		Use:   "list POOL",
		Short: "List a pool's dead letters",
		Args:  exactArgs(1, "a pool name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return usageErrorf("--limit %d: want 1 to 1000", limit)
			}
			cl, err := a.api()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			path := "/v1/admin/pools/" + url.PathEscape(args[0]) + "/dead-letters?limit=" + strconv.Itoa(limit)
			if err := cl.Do(cmd.Context(), true, "GET", path, nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			var out struct {
				DeadLetters []struct {
					ID         string
					JobID      string `json:"job_id"`
					Tenant     string
					Algorithm  string
					Reason     string
					Deliveries int
					DeadAt     time.Time `json:"dead_at"`
				} `json:"dead_letters"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			rows := [][]string{}
			for _, d := range out.DeadLetters {
				rows = append(rows, []string{d.ID, d.JobID, d.Tenant, d.Algorithm, strconv.Itoa(d.Deliveries),
					d.DeadAt.Local().Format("2006-01-02 15:04:05"), shorten(d.Reason, 60)})
			}
			return a.table([]string{"ID", "JOB", "TENANT", "ALGORITHM", "DELIVERIES", "DEAD AT", "REASON"}, rows)
		},
	}
	list.Flags().IntVar(&limit, "limit", 100, "at most this many (1-1000)")
	c.AddCommand(list)

	var all bool
	redrive := &cobra.Command{
		Use:   "redrive POOL (ID | --all)",
		Short: "Queue a dead letter's job again, or every one's with --all",
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) != 1, !all && len(args) != 2:
				return usageErrorf("redrive wants a pool and an entry id, or a pool and --all")
			}
			cl, err := a.api()
			if err != nil {
				return err
			}
			pool := url.PathEscape(args[0])
			var raw json.RawMessage
			if all {
				if err := cl.Do(cmd.Context(), true, "POST", "/v1/admin/pools/"+pool+"/dead-letters/redrive", nil, &raw); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(raw)
				}
				var out struct{ Redriven int }
				if err := json.Unmarshal(raw, &out); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "redrove %d dead letters of pool %s\n", out.Redriven, args[0])
				return nil
			}
			if err := cl.Do(cmd.Context(), true, "POST", "/v1/admin/pools/"+pool+"/dead-letters/"+url.PathEscape(args[1])+"/redrive", nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			var j jobView
			if err := json.Unmarshal(raw, &j); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s (attempt %d)\n", j.ID, j.State, j.Attempt)
			return nil
		},
	}
	redrive.Flags().BoolVar(&all, "all", false, "redrive every dead letter of the pool whose job can run again")
	c.AddCommand(redrive)
	return c
}
