package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:0": true, "[::1]:8080": true, "localhost:1": true, "127.0.0.2:80": true,
		"0.0.0.0:80": false, ":80": false, "192.168.1.2:80": false, "example.com:80": false, "nonsense": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestRunRefusesBadSetups(t *testing.T) {
	env := func(string) string { return "" }
	var out, errb bytes.Buffer
	if err := run(context.Background(), nil, env, &out, &errb); err == nil || !strings.Contains(err.Error(), "64 characters") {
		t.Fatalf("no token: %v", err)
	}
	tok := func(string) string { return strings.Repeat("a", 64) }
	if err := run(context.Background(), []string{"-addr", "0.0.0.0:0"}, tok, &out, &errb); err == nil {
		t.Fatal("a non-loopback address was accepted")
	}
}

func TestRunServesAndStops(t *testing.T) {
	urlFile := filepath.Join(t.TempDir(), "url")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-url-file", urlFile}, func(string) string { return strings.Repeat("b", 64) }, &out, &errb)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(urlFile)
		if err == nil && strings.HasPrefix(string(b), "http://127.0.0.1:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no URL written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
