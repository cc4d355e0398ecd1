package inputs

import (
	"testing"

	"github.com/aigw/aigw/internal/inputfiles"
)

func TestNameIsSafe(t *testing.T) {
	for ref, want := range map[inputfiles.Ref]string{
		{Upload: "01JB0000000000000000000000"}:                "01JB0000000000000000000000",
		{URL: "https://example.com/models/m.bin?x=1"}:         "m.bin",
		{URL: "https://example.com/a%2F..%2F..%2Fetc/passwd"}: "passwd",
		{URL: "https://example.com/"}:                         "file",
		{URL: "https://example.com/..."}:                      "...",
		{URL: "https://example.com/we%20ird$name"}:            "we_ird_name",
	} {
		if got := name(ref); got != want {
			t.Errorf("%+v: %q, want %q", ref, got, want)
		}
	}
}
