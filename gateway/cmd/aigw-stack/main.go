// Command aigw-stack deploys or removes the functions of an OpenFaaS stack
// file through the OpenFaaS API (github.com/openfaas/go-sdk), secrets first:
//
//	aigw-stack deploy -f stack.yml -secrets-dir .aigw/secrets
//	aigw-stack remove -f stack.yml
//	aigw-stack version
//
// The gateway and its credentials come from OPENFAAS_URL (default
// http://127.0.0.1:8080), AIGW_GATEWAY_USER and AIGW_GATEWAY_PASSWORD.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aigw/aigw/gateway/internal/stackdeploy"
)

var version = "dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "aigw-stack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: aigw-stack deploy|remove|version [-f stack.yml] [-secrets-dir DIR] [-env K=V,...]")
	}
	cmd := args[0]
	if cmd == "version" {
		fmt.Println(version)
		return nil
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	file := fs.String("f", "stack.yml", "stack file")
	secretsDir := fs.String("secrets-dir", "", "directory with one file per secret (created or updated on the gateway)")
	envList := fs.String("env", "", "extra environment for every function, K=V,K=V")
	timeout := fs.Duration("ready-timeout", time.Minute, "how long to wait for every function to be ready")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	gw := os.Getenv("OPENFAAS_URL")
	if gw == "" {
		gw = "http://127.0.0.1:8080"
	}
	c, err := stackdeploy.NewClient(gw, os.Getenv("AIGW_GATEWAY_USER"), os.Getenv("AIGW_GATEWAY_PASSWORD"))
	if err != nil {
		return err
	}
	env := map[string]string{}
	if *envList != "" {
		for _, kv := range strings.Split(*envList, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("-env %q: want K=V,K=V", *envList)
			}
			env[k] = v
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch cmd {
	case "deploy":
		return stackdeploy.Deploy(ctx, c, stackdeploy.Options{StackFile: *file, SecretsDir: *secretsDir, Env: env, ReadyTimeout: *timeout, Log: log})
	case "remove":
		return stackdeploy.Remove(ctx, c, *file)
	}
	return fmt.Errorf("unknown command %q (want deploy, remove or version)", cmd)
}
