package authfn

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
	"github.com/aigw/aigw/internal/fnserve"
)

// TestREADMEConfigTable: the README's configuration table lists for auth
// exactly the variables it reads (its config, and its logger's level).
func TestREADMEConfigTable(t *testing.T) {
	envdoc.CheckRepo(t, "auth", func(r *envconf.Reader) {
		fc := fnserve.Read(r)
		Read(r)
		ReadSecretsFrom(r, fc)
	})
}
