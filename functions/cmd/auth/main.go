// Command auth is aigw's auth function: OAuth 2.0 client-credentials tokens,
// the JWK set that verifies them, and the admin API for API clients.
//
//	auth [serve]                                   serve the function (default)
//	auth version                                   print the version
//	auth genkey                                    print a fresh Ed25519 signing key (PKCS#8 PEM)
//	auth create-client -name N -tenant T -scopes a,b   create a client in $AIGW_MONGO_URI
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/fnserve"
)

var version = "dev"

// commands are auth's commands besides serve and version.
var commands = []fnserve.Command{
	{Name: "genkey", Usage: "genkey", Run: genkey},
	{Name: "create-client", Usage: "create-client -name N -tenant T -scopes a,b", Run: createClient},
}

func main() { fnserve.Main("auth", version, authfn.Serve, commands...) }

// run runs auth's command line args (serve, version, genkey, create-client).
func run(ctx context.Context, log *slog.Logger, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return fnserve.Run(ctx, log, "auth", version, args, getenv, stdout, stderr, authfn.Serve, commands...)
}

func genkey(_ context.Context, _ *slog.Logger, args []string, _ func(string) string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("genkey: unexpected arguments %q", args)
	}
	pem, err := authfn.GenerateKeyPEM()
	if err != nil {
		return err
	}
	_, err = stdout.Write(pem)
	return err
}

func createClient(ctx context.Context, _ *slog.Logger, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("create-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "client name")
	tenant := fs.String("tenant", "", "tenant")
	scopes := fs.String("scopes", "", "comma-separated scopes (jobs:write, jobs:read; algorithms:admin is for operators only: POST /admin/token)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("create-client: unexpected arguments %q", fs.Args())
	}
	var list []string
	for s := range strings.SplitSeq(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	c, secret, err := authfn.CreateClient(ctx, getenv, clients.Spec{Name: *name, Tenant: *tenant, Scopes: list})
	if err != nil {
		return fmt.Errorf("create-client: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "AIGW_CLIENT_ID=%s\nAIGW_CLIENT_SECRET=%s\n", c.ID, secret)
	return err
}
