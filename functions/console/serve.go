package console

import (
	"context"
	"log/slog"

	"github.com/aigw/aigw/internal/fnserve"
)

// Serve runs the console function until ctx ends.
func Serve(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	h, err := New(Deps{Config: cfg, Log: log})
	if err != nil {
		return err
	}
	return fnserve.Serve(ctx, log, cfg.Fn, h)
}
