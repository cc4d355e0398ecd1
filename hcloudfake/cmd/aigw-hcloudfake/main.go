// Command aigw-hcloudfake serves a fake Hetzner Cloud API on a loopback
// address, so that `terraform apply` of terraform/envs/local runs for real
// without a cloud account.
//
// Usage:
//
//	aigw-hcloudfake -addr 127.0.0.1:0 -token-file FILE [-url-file FILE] [-v]
//
// The token (64 characters, as the hcloud provider demands) is read from
// -token-file, or from $AIGW_HCLOUD_TOKEN. Once listening, the endpoint URL
// (http://127.0.0.1:PORT/v1) is printed on stdout and written to -url-file.
// SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aigw/aigw/hcloudfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "aigw-hcloudfake:", err)
		os.Exit(1)
	}
}

// run parses flags, listens on a loopback address and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aigw-hcloudfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on (port 0 picks a free one)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default: $AIGW_HCLOUD_TOKEN)")
	urlFile := fs.String("url-file", "", "write the endpoint URL here once listening")
	verbose := fs.Bool("v", false, "log every request on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	token := getenv("AIGW_HCLOUD_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	if len(token) != 64 {
		return errors.New("the token must be 64 characters (-token-file or $AIGW_HCLOUD_TOKEN)")
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/v1"
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(url+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintln(stdout, url)

	srv := &http.Server{
		Handler:           hcloudfake.New(token, logger),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// checkLoopback refuses any listen address that is not a literal loopback IP
// (or "localhost"): the fake must never be reachable from other machines.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address", addr)
	}
	return nil
}
