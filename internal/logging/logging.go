// Package logging sets up the logger of every aigw binary: JSON lines on
// stderr, tagged with the stable keys "service" (the binary) and "version", at
// the level of AIGW_LOG_LEVEL.
//
// Records use stable key names across the system: job_id, pool, node, tenant,
// algorithm and err (see Keys).
package logging

import (
	"io"
	"log/slog"

	"github.com/aigw/aigw/internal/envconf"
)

// EnvLevel names the variable holding the minimum level logged.
const EnvLevel = "AIGW_LOG_LEVEL"

// Stable keys of log records: every binary names the same thing the same way.
const (
	KeyService   = "service"
	KeyVersion   = "version"
	KeyJobID     = "job_id"
	KeyPool      = "pool"
	KeyNode      = "node"
	KeyTenant    = "tenant"
	KeyAlgorithm = "algorithm"
	KeyErr       = "err"
)

// ReadLevel reads AIGW_LOG_LEVEL through r: debug, info, warn or error (any
// case, optionally with an offset such as warn+2, as slog.Level parses it);
// unset means info. Any other value is an error of r naming the variable.
func ReadLevel(r *envconf.Reader) slog.Level {
	return envconf.Parse(r, EnvLevel, slog.LevelInfo, func(v string) (slog.Level, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return 0, errWantLevel
		}
		return l, nil
	})
}

type wantLevel struct{}

func (wantLevel) Error() string { return "want debug, info, warn or error" }

var errWantLevel error = wantLevel{}

// Level reads AIGW_LOG_LEVEL through getenv (see ReadLevel).
func Level(getenv func(string) string) (slog.Level, error) {
	r := envconf.FromGetenv(getenv)
	l := ReadLevel(r)
	return l, r.Err()
}

// New returns a JSON logger writing to w at the level of AIGW_LOG_LEVEL (read
// through getenv), every record carrying service and version.
func New(w io.Writer, getenv func(string) string, service, version string) (*slog.Logger, error) {
	l, err := Level(getenv)
	if err != nil {
		return nil, err
	}
	return NewAt(w, l, service, version), nil
}

// NewAt is New at a level the binary's config already read (ReadLevel).
func NewAt(w io.Writer, level slog.Level, service, version string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(KeyService, service, KeyVersion, version)
}
