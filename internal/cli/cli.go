// Package cli is the aigw command-line tool (cmd/aigw): the public API for
// people (tables, a live progress bar, streamed log lines) and for scripts
// (--json, exit codes).
//
// Credentials come from aigw login (a file in the user's config directory,
// mode 0600) or from the variables .aigw/demo.env sets (AIGW_URL,
// AIGW_AUTH_URL, AIGW_CLIENT_ID, AIGW_CLIENT_SECRET), which win field by
// field; AIGW_ADMIN_TOKEN (or aigw login --admin-token-stdin) gets operator
// tokens for the operator's commands.
//
// Exit codes: 0 done; 1 the job failed, was canceled or expired (or another
// error); 2 a usage error; 3 the API refused the request (4xx, its message
// printed); 4 the gateway could not be reached; 5 the API failed (5xx).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aigw/aigw/internal/envconf"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitJobFailed   = 1
	ExitUsage       = 2
	ExitAPIRefused  = 3
	ExitUnreachable = 4
	ExitAPIFailed   = 5
)

// usageError is a mistake in the command line or the input it names.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// jobEndedError: the job ended in failed, canceled or expired.
type jobEndedError struct {
	id, state, msg string
}

func (e *jobEndedError) Error() string {
	if e.msg != "" {
		return fmt.Sprintf("job %s %s: %s", e.id, e.state, e.msg)
	}
	return fmt.Sprintf("job %s %s", e.id, e.state)
}

// ExitCode maps an error of a command to the process's exit code.
func ExitCode(err error) int {
	var ue *usageError
	var api *APIError
	var unreachable *UnreachableError
	var ended *jobEndedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &unreachable):
		return ExitUnreachable
	case errors.As(err, &api) && api.Status >= 500:
		return ExitAPIFailed
	case errors.As(err, &api):
		return ExitAPIRefused
	case errors.As(err, &ended):
		return ExitJobFailed
	case cobraUsage(err):
		return ExitUsage
	}
	return ExitJobFailed
}

// cobraUsage recognises cobra's own command-line errors.
func cobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "required flag",
		"flag needs an argument", "accepts ", "requires at least", "bad flag syntax", "if any flags in the group"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

// app is one run of the tool.
type app struct {
	env    Profile
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// json: print the API's JSON instead of tables.
	json bool
	// tty: stderr is a terminal (the progress bar draws itself).
	tty bool

	client *Client
}

// Main runs the tool with args (without the program's name) and returns the
// exit code.
func Main(ctx context.Context, version string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := envconf.FromGetenv(getenv)
	a := &app{env: ReadEnv(r), stdin: stdin, stdout: stdout, stderr: stderr, tty: isTerminal(stderr)}
	if err := r.Err(); err != nil {
		fmt.Fprintf(stderr, "aigw: %v\n", err)
		return ExitUsage
	}
	root := a.root(version)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "aigw: %v\n", err)
		if ExitCode(err) == ExitUsage && cobraUsage(err) {
			fmt.Fprintln(stderr, "Run 'aigw --help' for usage.")
		}
	}
	return ExitCode(err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (a *app) root(version string) *cobra.Command {
	root := &cobra.Command{
		Use:   "aigw",
		Short: "aigw: run AI algorithms as jobs on your GPU pools, from the command line",
		Long: `aigw talks to an aigw gateway's public API.

Credentials: aigw login, or the variables .aigw/demo.env sets
(set -a; . .aigw/demo.env; set +a): AIGW_URL, AIGW_AUTH_URL,
AIGW_CLIENT_ID, AIGW_CLIENT_SECRET; AIGW_ADMIN_TOKEN for operator commands.

Exit codes: 0 ok, 1 the job failed or was canceled, 2 usage error,
3 the API refused the request (4xx), 4 the gateway cannot be reached,
5 the API failed (5xx).`,
		Version:           version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON (the API's) instead of tables, for scripts")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErrorf("%v", err) })
	root.AddCommand(a.loginCmd(), a.logoutCmd(), a.algorithmsCmd(), a.runCmd(), a.jobsCmd(), a.poolsCmd(), a.deadLettersCmd())
	return root
}

// api returns the client of the profile (login file, then environment).
func (a *app) api() (*Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	p, err := loadProfile(a.env)
	if err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	a.client = NewClient(p, nil)
	return a.client, nil
}

// printJSON writes raw JSON indented.
func (a *app) printJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err := a.stdout.Write(raw)
		return err
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes rows under a header, aligned.
func (a *app) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// args checks the number of positional arguments, as a usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s wants %s (got %d arguments)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
