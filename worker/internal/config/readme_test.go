package config

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for the
// worker exactly the variables it reads (the daemon, register and the
// logger's level).
func TestREADMEConfigTable(t *testing.T) {
	envdoc.CheckRepo(t, "worker", func(r *envconf.Reader) {
		Read(r, host)
		ReadRegister(r)
	})
}
