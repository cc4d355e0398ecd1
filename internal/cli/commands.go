package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aigw/aigw/internal/algorithm"
)

func (a *app) loginCmd() *cobra.Command {
	var p Profile
	var secretStdin, adminStdin bool
	c := &cobra.Command{
		Use:   "login",
		Short: "Store the gateway's address and your credentials for later commands",
		Long: `login checks the credentials (it gets a token with them) and stores them in
<user config dir>/aigw/credentials.json, readable by you alone. Flags left out
come from the variables (AIGW_URL, AIGW_AUTH_URL, AIGW_CLIENT_ID,
AIGW_CLIENT_SECRET, AIGW_ADMIN_TOKEN); secrets are read from standard input
with --client-secret-stdin or --admin-token-stdin.`,
		Example: `  aigw login --url http://127.0.0.1:8080/function/router --client-id cl_… --client-secret-stdin < secret.txt
  set -a; . .aigw/demo.env; set +a; aigw login
  aigw login --admin-token-stdin < .aigw/secrets/aigw-admin-token`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := bufio.NewReader(a.stdin)
			readSecret := func(what string) (string, error) {
				line, err := in.ReadString('\n')
				line = strings.TrimSpace(line)
				if line == "" {
					return "", usageErrorf("no %s on standard input", what)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return "", err
				}
				return line, nil
			}
			prof, err := loadProfile(a.env)
			if err != nil {
				return err
			}
			if p.URL != "" {
				prof.URL = strings.TrimRight(p.URL, "/")
				if p.AuthURL == "" {
					prof.AuthURL = ""
					if base, ok := strings.CutSuffix(prof.URL, "/function/router"); ok {
						prof.AuthURL = base + "/function/auth"
					}
				}
			}
			if p.AuthURL != "" {
				prof.AuthURL = strings.TrimRight(p.AuthURL, "/")
			}
			if p.ClientID != "" {
				prof.ClientID, prof.ClientSecret = p.ClientID, ""
			}
			if secretStdin {
				if prof.ClientSecret, err = readSecret("client secret"); err != nil {
					return err
				}
			}
			if adminStdin {
				if prof.AdminToken, err = readSecret("admin token"); err != nil {
					return err
				}
			}
			for _, u := range []string{prof.URL, prof.AuthURL} {
				if pu, err := url.Parse(u); u != "" && (err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "") {
					return usageErrorf("%q is not an http(s) URL", u)
				}
			}
			if prof.ClientID != "" && prof.ClientSecret == "" {
				return usageErrorf("client %s needs its secret: --client-secret-stdin or AIGW_CLIENT_SECRET", prof.ClientID)
			}
			if err := prof.check(); err != nil {
				return err
			}
			cl := NewClient(prof, nil)
			who := ""
			if prof.ClientID != "" {
				if _, err := cl.token(cmd.Context(), false); err != nil {
					return err
				}
				who = "client " + prof.ClientID
			}
			if prof.AdminToken != "" {
				if _, err := cl.token(cmd.Context(), true); err != nil {
					return err
				}
				who = strings.TrimPrefix(who+" and the admin token", " and ")
			}
			path, err := saveProfile(prof)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "logged in to %s with %s (saved in %s)\n", prof.URL, who, path)
			return nil
		},
	}
	c.Flags().StringVar(&p.URL, "url", "", "the router's URL through the gateway, e.g. http://127.0.0.1:8080/function/router")
	c.Flags().StringVar(&p.AuthURL, "auth-url", "", "the auth function's URL (default: beside --url, /function/auth)")
	c.Flags().StringVar(&p.ClientID, "client-id", "", "API client id")
	c.Flags().BoolVar(&secretStdin, "client-secret-stdin", false, "read the client secret from standard input")
	c.Flags().BoolVar(&adminStdin, "admin-token-stdin", false, "read the admin token (operator commands) from standard input")
	return c
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the credentials aigw login stored",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			path, err := credentialsPath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			fmt.Fprintln(a.stdout, "logged out")
			return nil
		},
	}
}

// algorithmView is the part of a catalog entry the tables show.
type algorithmView struct {
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	Versions    []string `json:"versions"`
	Description string   `json:"description"`
	Pool        string   `json:"pool"`
	Res         struct {
		GPUs     int `json:"gpus"`
		MemoryMB int `json:"memory_mb"`
	} `json:"resources"`
	TimeoutMS   int64           `json:"timeout_ms"`
	MaxRetries  int             `json:"max_retries"`
	InputSchema json.RawMessage `json:"input_schema"`
}

func (a *app) algorithmsCmd() *cobra.Command {
	c := &cobra.Command{Use: "algorithms", Aliases: []string{"algorithm", "algos"}, Short: "The algorithm catalog: list, get, register"}
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the algorithms",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), false, "GET", "/v1/algorithms", nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			var out struct{ Algorithms []algorithmView }
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			rows := [][]string{}
			for _, al := range out.Algorithms {
				rows = append(rows, []string{al.Name, al.Version, strings.Join(al.Versions, ","), al.Pool,
					strconv.Itoa(al.Res.GPUs), (time.Duration(al.TimeoutMS) * time.Millisecond).String(), al.Description})
			}
			return a.table([]string{"NAME", "VERSION", "VERSIONS", "POOL", "GPUS", "TIMEOUT", "DESCRIPTION"}, rows)
		},
	})
	var version string
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show an algorithm: versions, resources, input schema",
		Args:  exactArgs(1, "an algorithm name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.api()
			if err != nil {
				return err
			}
			path := "/v1/algorithms/" + url.PathEscape(args[0])
			if version != "" {
				path += "?version=" + url.QueryEscape(version)
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), false, "GET", path, nil, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			var al algorithmView
			if err := json.Unmarshal(raw, &al); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "name:         %s\nversion:      %s\nversions:     %s\npool:         %s\ngpus:         %d\nmemory:       %d MB\ntimeout:      %s\nmax retries:  %d\n",
				al.Name, al.Version, strings.Join(al.Versions, ", "), al.Pool, al.Res.GPUs, al.Res.MemoryMB,
				time.Duration(al.TimeoutMS)*time.Millisecond, al.MaxRetries)
			if al.Description != "" {
				fmt.Fprintf(a.stdout, "description:  %s\n", al.Description)
			}
			if len(al.InputSchema) > 0 {
				fmt.Fprintln(a.stdout, "input schema:")
				return a.printJSON(al.InputSchema)
			}
			return nil
		},
	}
	get.Flags().StringVar(&version, "version", "", "a registered version (default: the latest)")
	c.AddCommand(get)

	var file string
	reg := &cobra.Command{
		Use:   "register -f DEFINITION",
		Short: "Register a version of an algorithm from its definition (YAML or JSON; operator)",
		Long: `register sends a definition (the format of algorithms/README.md, e.g.
algorithms/echo/algorithm.yaml) to PUT /v1/algorithms/{name}, with an operator
token (AIGW_ADMIN_TOKEN or aigw login --admin-token-stdin).`,
		Example: "  aigw algorithms register -f algorithms/echo/algorithm.yaml",
		Args:    exactArgs(0, "no arguments (the definition comes with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErrorf("name the definition file with -f")
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return usageErrorf("%v", err)
			}
			d, err := algorithm.Parse(b)
			if err != nil {
				return usageErrorf("%s: %v", file, err)
			}
			if d.Name == "" {
				return usageErrorf("%s: the definition names no algorithm (name:)", file)
			}
			cl, err := a.api()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := cl.Do(cmd.Context(), true, "PUT", "/v1/algorithms/"+url.PathEscape(d.Name), d, &raw); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(raw)
			}
			fmt.Fprintf(a.stdout, "registered %s %s (pool %s)\n", d.Name, d.Version, d.Pool)
			return nil
		},
	}
	reg.Flags().StringVarP(&file, "file", "f", "", "the definition file (YAML or JSON)")
	c.AddCommand(reg)
	return c
}

// readInput reads --input: @file, - (standard input) or JSON itself.
func (a *app) readInput(v string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case v == "":
		return nil, usageErrorf("give the job's input with --input: JSON, @file.json or - (standard input)")
	case v == "-":
		b, err = io.ReadAll(a.stdin)
	case strings.HasPrefix(v, "@"):
		b, err = os.ReadFile(v[1:])
	default:
		b = []byte(v)
	}
	if err != nil {
		return nil, usageErrorf("input: %v", err)
	}
	if !json.Valid(b) {
		return nil, usageErrorf("input %s is not valid JSON", shorten(string(b), 80))
	}
	return json.RawMessage(b), nil
}

func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// withTimeout bounds a wait (d 0: no bound).
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
