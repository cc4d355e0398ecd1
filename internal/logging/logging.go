// Package logging sets up the logger of every aigw function: JSON lines on
// stderr, tagged with the function's name and version, at the level of
// AIGW_LOG_LEVEL.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// EnvLevel names the variable holding the minimum level logged.
const EnvLevel = "AIGW_LOG_LEVEL"

// Level reads AIGW_LOG_LEVEL through getenv: debug, info, warn or error
// (any case, optionally with an offset such as warn+2, as slog.Level parses
// it); unset means info. Any other value is an error naming the variable.
func Level(getenv func(string) string) (slog.Level, error) {
	var l slog.Level
	v := strings.TrimSpace(getenv(EnvLevel))
	if v == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return 0, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLevel, v)
	}
	return l, nil
}

// New returns a JSON logger writing to w at the level of AIGW_LOG_LEVEL, every
// record carrying the stable keys "function" and "version".
func New(w io.Writer, getenv func(string) string, function, version string) (*slog.Logger, error) {
	l, err := Level(getenv)
	if err != nil {
		return nil, err
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("function", function, "version", version), nil
}
