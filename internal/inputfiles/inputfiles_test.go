package inputfiles

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const id = "01JB0000000000000000000000"

func TestFindEveryReference(t *testing.T) {
	in := `{"a":{"$file":"` + id + `"},"list":[1,{"$file":"https://example.com/x.bin","size":3,"sha256":"` + strings.Repeat("a", 64) + `"}],"n":1.50,"s":"$file"}`
	refs, err := Find(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 {
		t.Fatalf("refs %+v", refs)
	}
	byPath := map[string]Ref{refs[0].Path: refs[0], refs[1].Path: refs[1]}
	if r := byPath["/a"]; r.Upload != id || r.URL != "" {
		t.Fatalf("/a: %+v", r)
	}
	if r := byPath["/list/1"]; r.URL != "https://example.com/x.bin" || r.Size != 3 || r.SHA256 != strings.Repeat("a", 64) {
		t.Fatalf("/list/1: %+v", r)
	}
}

func TestRewriteKeepsTheRest(t *testing.T) {
	in := `{"files":[{"$file":"` + id + `"}],"big":12345678901234567890,"x":0.10}`
	out, err := Rewrite(json.RawMessage(in), func(r Ref) (any, error) {
		return Local{Path: "/run/in/0", Size: 5, SHA256: "s"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"big":12345678901234567890,"files":[{"path":"/run/in/0","size":5,"sha256":"s"}],"x":0.10}` {
		t.Fatalf("rewritten %s", out)
	}
	plain := json.RawMessage(`{"message":"no files"}`)
	if out, err := Rewrite(plain, nil); err != nil || string(out) != string(plain) {
		t.Fatalf("an input without references: %s %v", out, err)
	}
}

func TestBadReferences(t *testing.T) {
	for _, in := range []string{
		`{"f":{"$file":""}}`,
		`{"f":{"$file":5}}`,
		`{"f":{"$file":"not-an-id"}}`,
		`{"f":{"$file":"` + id + `","size":-1}}`,
		`{"f":{"$file":"` + id + `","size":"3"}}`,
		`{"f":{"$file":"` + id + `","sha256":"ABC"}}`,
		`{"f":{"$file":"` + id + `","other":1}}`,
		`{"f":{"$file":"ftp://example.com/x"}}`,
	} {
		_, err := Find(json.RawMessage(in))
		var e *Error
		if !errors.As(err, &e) || e.Path != "/f" {
			t.Errorf("%s: %v, want an error at /f", in, err)
		}
	}
}
