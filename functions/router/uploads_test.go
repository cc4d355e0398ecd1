package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/uploads"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// fileDef is an algorithm whose input is {"files": [...]}.
func fileDef(pool string) string {
	return `{"version":"1.0.0","pool":"` + pool + `","runtime":{"type":"exec","command":["aigw-sha256"]},
		"input_schema":{"type":"object","required":["files"],"properties":{"files":{"type":"array"}}}}`
}

type uploadReply struct {
	ID        string    `json:"id"`
	UploadURL string    `json:"upload_url"`
	ExpiresAt time.Time `json:"expires_at"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
}

// An upload is announced, PUT to its presigned URL, and referenced by a job's
// input; its reference is stored in the canonical form the worker fetches.
// Another tenant cannot name it; a size over the tenant's limit is 413; a
// URL to a private address or over plain http is 422.
func TestUploadsAndFileReferences(t *testing.T) {
	t.Parallel()
	obj, s3 := objstoretest.Store(t)
	cfg := testConfig()
	cfg.S3 = s3
	cfg.UploadLimit = 1 << 20
	cfg.UploadLimits = map[string]int64{"small": 10}
	e := setup(t, cfg)
	e.want(t, e.do(t, "PUT", "/v1/algorithms/hash", e.token, fileDef(e.pool)), http.StatusCreated)

	data := []byte("a file for a job\n")
	var up uploadReply
	e.want(t, e.do(t, "POST", "/v1/uploads", e.token, `{"size":`+itoa(len(data))+`,"sha256":"`+sum(data)+`"}`), http.StatusCreated).decode(t, &up)
	if up.ID == "" || up.Size != int64(len(data)) || up.SHA256 != sum(data) || time.Until(up.ExpiresAt) < 50*time.Minute {
		t.Fatalf("upload %+v", up)
	}
	req, _ := http.NewRequest(http.MethodPut, up.UploadURL, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT to the upload URL: %d", resp.StatusCode)
	}
	body, _, err := obj.Get(e.ctx, uploads.Key("acme", up.ID))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("stored %q", got)
	}

	// The job's record holds the canonical reference.
	r := e.want(t, e.do(t, "POST", "/v1/algorithms/hash/jobs", e.token, `{"input":{"files":[{"$file":"`+up.ID+`"}]}}`), http.StatusAccepted)
	var j struct {
		ID string `json:"id"`
	}
	r.decode(t, &j)
	rec, err := e.jobs.GetByID(e.ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Files []map[string]any `json:"files"`
	}
	if err := json.Unmarshal(rec.Input, &in); err != nil {
		t.Fatal(err)
	}
	if f := in.Files[0]; f["$file"] != up.ID || f["size"] != float64(len(data)) || f["sha256"] != sum(data) {
		t.Fatalf("stored reference %v", f)
	}

	other := e.is.Token(t, "other", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	small := e.is.Token(t, "small", auth.ScopeJobsRead, auth.ScopeJobsWrite)
	for _, c := range []struct {
		name, token, path, body string
		status                  int
		code, msg               string
	}{
		{"another tenant's upload", other, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"` + up.ID + `"}]}}`, 422, "invalid_input", "no upload " + up.ID},
		{"an unknown upload", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"01JZZZZZZZZZZZZZZZZZZZZZZZ"}]}}`, 422, "invalid_input", "input at /files/0"},
		{"a reference whose checksum differs", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"` + up.ID + `","sha256":"` + strings.Repeat("0", 64) + `"}]}}`, 422, "invalid_input", "not what the reference says"},
		{"a private address", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"https://10.1.2.3/model.bin"}]}}`, 422, "invalid_input", "file URL refused"},
		{"the metadata service", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"https://169.254.169.254/latest"}]}}`, 422, "invalid_input", "file URL refused"},
		{"plain http", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"http://example.com/a"}]}}`, 422, "invalid_input", "must be https"},
		{"a bad reference", e.token, "/v1/algorithms/hash/jobs", `{"input":{"files":[{"$file":"x","extra":1}]}}`, 422, "invalid_input", "input at /files/0"},
		{"over the default limit", e.token, "/v1/uploads", `{"size":2097152,"sha256":"` + sum(data) + `"}`, 413, "upload_too_large", "limit of 1048576"},
		{"over the tenant's own limit", small, "/v1/uploads", `{"size":11,"sha256":"` + sum(data) + `"}`, 413, "upload_too_large", "limit of 10"},
		{"a bad checksum", e.token, "/v1/uploads", `{"size":5,"sha256":"abc"}`, 422, "invalid_upload", "sha256"},
		{"no size", e.token, "/v1/uploads", `{"sha256":"` + sum(data) + `"}`, 422, "invalid_upload", "size"},
	} {
		r := e.want(t, e.do(t, "POST", c.path, c.token, c.body), c.status)
		code, msg := r.errorCode(t)
		if code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %s %q, want %s containing %q", c.name, code, msg, c.code, c.msg)
		}
	}
}

func itoa(n int) string { return jsonInt(n) }

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }
