package orchestrator

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for orchestrator
// exactly the variables it reads (its config, and its logger's level).
func TestREADMEConfigTable(t *testing.T) {
	envdoc.CheckRepo(t, "orchestrator", func(r *envconf.Reader) {
		Read(r)
	})
}
