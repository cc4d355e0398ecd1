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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/aigw/aigw/functions/authfn"
	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/logging"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, err := logging.New(os.Stderr, os.Getenv, "auth", version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "auth:", err)
		stop()
		os.Exit(2)
	}
	if err := run(ctx, log, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		log.Error("auth failed", "err", err)
		stop()
		os.Exit(1)
	}
}

const usage = `usage: auth [serve | version | genkey | create-client -name N -tenant T -scopes a,b]`

func run(ctx context.Context, log *slog.Logger, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return authfn.Serve(ctx, log, getenv)
	case "version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "genkey":
		pem, err := authfn.GenerateKeyPEM()
		if err != nil {
			return err
		}
		_, err = stdout.Write(pem)
		return err
	case "create-client":
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
	default:
		return errors.New(usage)
	}
}
