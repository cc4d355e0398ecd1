package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		"defaults": {
			want: config{listen: "127.0.0.1:27018", dataDir: ".aigw/ferretdb", logLevel: slog.LevelInfo, backendLogLevel: slog.LevelError, pingTimeout: 2 * time.Second},
		},
		"environment": {
			env: map[string]string{
				"AIGW_DEVMONGO_LISTEN":            "127.0.0.1:1",
				"AIGW_DEVMONGO_DATA_DIR":          "/d",
				"AIGW_DEVMONGO_LOG_LEVEL":         "debug",
				"AIGW_DEVMONGO_BACKEND_LOG_LEVEL": "warn",
			},
			want: config{listen: "127.0.0.1:1", dataDir: "/d", logLevel: slog.LevelDebug, backendLogLevel: slog.LevelWarn, pingTimeout: 2 * time.Second},
		},
		"flags over environment": {
			args: []string{"-listen", "127.0.0.1:2", "-log-level", "ERROR", "-ping", "h:1", "-ping-timeout", "5s"},
			env:  map[string]string{"AIGW_DEVMONGO_LISTEN": "127.0.0.1:1"},
			want: config{listen: "127.0.0.1:2", dataDir: ".aigw/ferretdb", logLevel: slog.LevelError, backendLogLevel: slog.LevelError, ping: "h:1", pingTimeout: 5 * time.Second},
		},
		"bad log level":      {env: map[string]string{"AIGW_DEVMONGO_LOG_LEVEL": "loud"}, wantErr: true},
		"bad backend level":  {args: []string{"-backend-log-level", "x"}, wantErr: true},
		"zero ping timeout":  {args: []string{"-ping-timeout", "0s"}, wantErr: true},
		"stray argument":     {args: []string{"serve"}, wantErr: true},
		"unknown flag":       {args: []string{"-port", "1"}, wantErr: true},
		"ping without value": {args: []string{"-ping"}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	getenv := func(string) string { return "" }
	if code := run([]string{"-h"}, getenv, io.Discard); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
	if code := run([]string{"-nope"}, getenv, io.Discard); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	// Nothing listens on port 1.
	if code := run([]string{"-ping", "127.0.0.1:1", "-ping-timeout", "300ms"}, getenv, io.Discard); code != 1 {
		t.Errorf("ping of nothing: exit %d, want 1", code)
	}
}
