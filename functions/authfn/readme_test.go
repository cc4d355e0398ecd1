package authfn

import (
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/envconf/envdoc"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/logging"
)

// TestREADMEConfigTable: the README's configuration table lists for auth
// exactly the variables it reads (its config, and its logger's level).
func TestREADMEConfigTable(t *testing.T) {
	table, err := envdoc.ReadRepoTable()
	if err != nil {
		t.Fatal(err)
	}
	r := envconf.Map(nil)
	fc := fnserve.Read(r)
	Read(r)
	ReadSecretsFrom(r, fc)
	logging.ReadLevel(r)
	if err := envdoc.Check(table, "auth", r.Vars()); err != nil {
		t.Error(err)
	}
}
