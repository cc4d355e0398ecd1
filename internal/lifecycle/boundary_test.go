package lifecycle_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// Only the lifecycle (and the store itself) builds a jobstore.Change: every
// other package moves jobs through a named operation. Tests may build one to
// set a record up; the store's benchmark (bench/internal/storebench) measures
// Transition itself.
func TestOnlyLifecycleBuildsChanges(t *testing.T) {
	root := "../.."
	allowed := []string{"internal/lifecycle/", "internal/jobstore/", "bench/internal/storebench/"}
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		for _, a := range allowed {
			if strings.HasPrefix(rel, a) {
				return nil
			}
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		name := "jobstore"
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) == "github.com/aigw/aigw/internal/jobstore" && imp.Name != nil {
				name = imp.Name.Name
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if sel, ok := lit.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Change" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == name {
					t.Errorf("%s: builds a jobstore.Change; move the job through internal/lifecycle", fset.Position(lit.Pos()))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("checked only %d files: is %s the workspace root?", files, root)
	}
}
