// Package envdoc holds the README's configuration table against the variables
// a binary reads through envconf, in both directions: every variable read is
// documented for that binary, and every variable documented for it is read.
package envdoc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/logging"
)

// Functions is what "functions" stands for in the table's "used by" column.
var Functions = []string{"auth", "router", "orchestrator"}

// Table parses the "## Configuration" table of a README: each variable (full
// names in backquotes in the first column) and the binaries of its "used by"
// column ("functions" expanded to Functions; other words, such as scripts or
// tests, kept as they are).
func Table(readme []byte) (map[string][]string, error) {
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Configuration"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			return nil, fmt.Errorf("configuration table row %q: want | variable | used by | default | what |", line)
		}
		var users []string
		for u := range strings.SplitSeq(cells[2], ",") {
			u = strings.TrimSpace(u)
			if u == "functions" {
				users = append(users, Functions...)
			} else if u != "" {
				users = append(users, u)
			}
		}
		for _, f := range strings.Split(cells[1], "/") {
			name := strings.Trim(strings.TrimSpace(f), "`")
			if name == "" || strings.HasPrefix(name, "_") || strings.ToUpper(name) != name {
				return nil, fmt.Errorf("configuration table row %q: write each variable's full name, such as `AIGW_X` / `AIGW_Y`", line)
			}
			out[name] = append(out[name], users...)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no configuration table under \"## Configuration\"")
	}
	return out, sc.Err()
}

// Check compares the variables binary reads with those the table documents
// for it; the error lists every difference.
func Check(table map[string][]string, binary string, read []string) error {
	var errs []error
	for _, v := range read {
		if !slices.Contains(table[v], binary) {
			errs = append(errs, fmt.Errorf("%s reads %s, but the README's configuration table does not list it for %s", binary, v, binary))
		}
	}
	for v, users := range table {
		if slices.Contains(users, binary) && !slices.Contains(read, v) {
			errs = append(errs, fmt.Errorf("the README's configuration table lists %s for %s, but %s does not read it", v, binary, binary))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// ReadRepoTable parses README.md of the repository holding the working
// directory (the first parent with a go.work).
func ReadRepoTable() (map[string][]string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			b, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil {
				return nil, err
			}
			return Table(b)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// CheckRepo is a binary's README test: read runs its start-up's readers on
// an empty environment, and every variable they read must be in the
// repository README's configuration table for binary, and every variable the
// table lists for binary must be read (the logger's level included).
func CheckRepo(t testing.TB, binary string, read func(*envconf.Reader)) {
	t.Helper()
	table, err := ReadRepoTable()
	if err != nil {
		t.Fatal(err)
	}
	r := envconf.Map(nil)
	read(r)
	logging.ReadLevel(r)
	if err := Check(table, binary, r.Vars()); err != nil {
		t.Error(err)
	}
}
