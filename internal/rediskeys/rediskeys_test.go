package rediskeys

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/testenv"
)

// The exact strings: keys are data on running clusters, so a change here is a
// migration, not a refactoring.
func TestKeyStringsAreFixed(t *testing.T) {
	q := QueueShard("gpu-a100", 3)
	a := AsyncQueue("gateway-async")
	for _, c := range []struct{ got, want string }{
		{q.Streams[0], "aigw:{gpu-a100#3}:q:high"},
		{q.Streams[1], "aigw:{gpu-a100#3}:q:normal"},
		{q.Streams[2], "aigw:{gpu-a100#3}:q:low"},
		{q.Delayed, "aigw:{gpu-a100#3}:delayed"},
		{q.IDs, "aigw:{gpu-a100#3}:ids"},
		{q.Dead, "aigw:{gpu-a100#3}:dead"},
		{q.HighWaiting, "aigw:{gpu-a100#3}:high-waiting"},
		{q.Wake, "aigw:{gpu-a100#3}:wake"},
		{q.Idle, "aigw:{gpu-a100#3}:idle"},
		{QueueShard("cpu", 0).Streams[1], "aigw:{cpu#0}:q:normal"},
		{Pools, "aigw:pools"},
		{Workers("gpu-a100"), "aigw:{gpu-a100}:workers"},
		{GangFree("gpu-a100"), "aigw:{gpu-a100}:gang:free"},
		{GangReservations("gpu-a100"), "aigw:{gpu-a100}:gang:res"},
		{GangOutput("gpu-a100", "j1"), "aigw:{gpu-a100}:gang:out:j1"},
		{JobEvents("01JABC"), "aigw:{job:01JABC}:events"},
		{JobCancel("01JABC"), "aigw:{job:01JABC}:cancel"},
		{RateLimit("tenant-a"), "aigw:{rl:tenant-a}"},
		{QuotaRunning("acme", "gpu-a100"), "aigw:{quota:gpu-a100/acme}:running"},
		{Fair("gpu-a100").Jobs, "aigw:{fair:gpu-a100}:jobs"},
		{Fair("gpu-a100").QueuePrefix + "acme", "aigw:{fair:gpu-a100}:q:acme"},
		{Fair("gpu-a100").OutInfo, "aigw:{fair:gpu-a100}:out:info"},
		{a.Calls, "aigw:{gateway-async}:calls"},
		{a.Attempts, "aigw:{gateway-async}:attempts"},
		{a.DonePrefix, "aigw:{gateway-async}:done:"},
		{AsyncDone("gateway-async", "c1"), "aigw:{gateway-async}:done:c1"},
		{OrchestratorTick, "aigw:{orchestrator}:tick"},
		{QuotaChanges, "aigw:quota-changes"},
		{TickLease("orchestrator"), "aigw:{orchestrator}:tick"},
		{TickLease("cyclebench-7"), "aigw:{cyclebench-7}:tick"},
	} {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
}

// hashTag is the part of key Redis Cluster hashes: the first {…} with at least
// one byte inside, else the whole key (the CLUSTER KEYSLOT rule).
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestKeysOfOneScriptShareOneHashTag(t *testing.T) {
	groups := map[string][]string{}
	q := QueueShard("gpu-a100", 3)
	groups["gpu-a100#3"] = append(q.Streams[:], q.Delayed, q.IDs, q.Dead, q.HighWaiting, q.Wake, q.Idle)
	groups["gpu-a100"] = []string{Workers("gpu-a100"), GangFree("gpu-a100"),
		GangReservations("gpu-a100"), GangOutput("gpu-a100", "j1")}
	groups["job:j1"] = []string{JobEvents("j1"), JobCancel("j1")}
	groups["rl:t"] = []string{RateLimit("t")}
	groups["quota:p/t"] = []string{QuotaRunning("t", "p")}
	a := AsyncQueue("gateway-async")
	groups["gateway-async"] = []string{a.Calls, a.Attempts, AsyncDone("gateway-async", "c1")}
	groups["orchestrator"] = []string{OrchestratorTick}
	for tag, keys := range groups {
		for _, k := range keys {
			if got := hashTag(k); got != tag {
				t.Errorf("key %s hashes by %q, want the group's tag %q", k, got, tag)
			}
		}
	}
	// Shards of one pool spread: their tags differ.
	if hashTag(QueueShard("p", 0).IDs) == hashTag(QueueShard("p", 1).IDs) {
		t.Error("two shards of one pool share a hash tag")
	}
	// The cluster agrees: every key of a group is in its group's slot.
	rdb := testenv.Redis(t)
	ctx := t.Context()
	for tag, keys := range groups {
		want, err := rdb.ClusterKeySlot(ctx, "{"+tag+"}").Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		for _, k := range keys {
			if got, err := rdb.ClusterKeySlot(ctx, k).Result(); err != nil || got != want {
				t.Errorf("key %s in slot %d (%v), want the slot %d of {%s}", k, got, err, want, tag)
			}
		}
	}
}

// TestNoKeyLiteralOutsideThisPackage scans every non-test Go file of the
// workspace: a string literal starting with "aigw:" (other than an aigw://
// URL) anywhere but here is a key spelled outside the one list.
func TestNoKeyLiteralOutsideThisPackage(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("workspace root %s: %v", root, err)
	}
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
				name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			if path == self {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Errorf("%s: %v", fset.Position(lit.Pos()), err)
				return true
			}
			// A key is "aigw:" and characters without spaces (a message
			// such as "aigw: cannot reach …" is not one).
			if strings.HasPrefix(s, "aigw:") && !strings.HasPrefix(s, "aigw://") && !strings.ContainsAny(s, " \t\n") {
				t.Errorf("%s: Redis key literal %q outside internal/rediskeys", fset.Position(lit.Pos()), s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned only %d Go files under %s", files, root)
	}
}
