package executors

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for executors
// exactly the variables it reads (its config, and its logger's level).
func TestREADMEConfigTable(t *testing.T) {
	envdoc.CheckRepo(t, "executors", func(r *envconf.Reader) {
		Read(r)
	})
}
