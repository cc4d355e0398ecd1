package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(strings.NewReader(`{"message":"héllo","sleep_ms":1}`), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "{\"message\":\"héllo\"}\n" || !strings.Contains(errb.String(), `"progress":0`) {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
	for _, bad := range []string{`{}`, `{"message":1}`, `{"message":"x","sleep_ms":-1}`, `nope`, `{"message":"x","extra":1}`} {
		if err := run(strings.NewReader(bad), &out, &errb); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
