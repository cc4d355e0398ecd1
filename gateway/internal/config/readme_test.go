package config

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
)

// TestREADMEConfigTable: the README's configuration table lists for the
// gateway exactly the variables it reads.
func TestREADMEConfigTable(t *testing.T) {
	t.Parallel()
	envdoc.CheckRepo(t, "gateway", func(r *envconf.Reader) {
		Read(r)
	})
}
