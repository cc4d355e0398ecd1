package config

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
	"github.com/aigw/aigw/internal/logging"
)

// TestREADMEConfigTable: the README's configuration table lists for the
// worker exactly the variables it reads (the daemon, register and the
// logger's level).
func TestREADMEConfigTable(t *testing.T) {
	table, err := envdoc.ReadRepoTable()
	if err != nil {
		t.Fatal(err)
	}
	r := envconf.Map(nil)
	Read(r, host)
	ReadRegister(r)
	logging.ReadLevel(r)
	if err := envdoc.Check(table, "worker", r.Vars()); err != nil {
		t.Error(err)
	}
}
