package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/testwait"
)

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// clientToken creates an API client of tenant and returns its token.
func (s *system) clientToken(tenant string) string {
	s.t.Helper()
	creds := map[string]string{}
	for _, line := range strings.Split(run(s.t, s.env, filepath.Join(binDir, "auth"), "create-client", "-name", tenant,
		"-tenant", tenant, "-scopes", "jobs:read,jobs:write"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			creds[k] = v
		}
	}
	return s.getToken(creds["AIGW_CLIENT_ID"], creds["AIGW_CLIENT_SECRET"])
}

// plainHTTP sends req to the object store (a presigned URL, not the API)
// and returns the status and body.
func plainHTTP(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestDataPlaneThroughTheStore drives the data plane of the whole system on
// the real object store: a file is announced (POST /v1/uploads) and sent to
// its presigned PUT URL; the sha256 reference algorithm (with an asset from
// the store) gets it as {"$file": id}, the worker fetches it and the asset
// before the run; the output names the file's size and SHA-256, and the
// artifact (a copy of the file) downloads through its presigned URL with the
// same bytes. A second job finds the asset in the worker's cache, which GET
// /v1/pools shows (one miss, one hit). Another tenant naming the upload is
// 422; an upload over the limit is 413.
func TestDataPlaneThroughTheStore(t *testing.T) {
	obj, store := objstoretest.Store(t)
	s := upWith(t, store, "AIGW_UPLOAD_LIMIT=1MiB")
	ctx := context.Background()

	// The algorithm, with an asset the worker downloads from the store.
	// Random bytes: the worker's cache (on disk, by content) has never seen them.
	weights := make([]byte, 32<<10)
	_, _ = rand.Read(weights)
	t.Cleanup(func() { // the worker's cache in its default place (AIGW_CACHE_DIR) outlives it
		_ = os.Remove(filepath.Join(os.TempDir(), "aigw-assets", "sha256", hexSHA256(weights)))
	})
	if _, err := obj.Put(ctx, "assets/weights.bin", bytes.NewReader(weights), int64(len(weights))); err != nil {
		t.Fatal(err)
	}
	assetURL, _, err := obj.PresignGet(ctx, "assets/weights.bin", time.Hour, "weights.bin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := algorithm.LoadFile(filepath.Join(repo, "algorithms", "sha256", algorithm.DefinitionFile))
	if err != nil {
		t.Fatal(err)
	}
	d.Pool = s.pool
	d.Assets = []algorithm.Asset{{Name: "weights", URL: assetURL, SHA256: hexSHA256(weights), Size: int64(len(weights))}}
	op := s.operatorToken()
	if code := s.api("PUT", "/v1/algorithms/sha256", d, nil, "Authorization", "Bearer "+op); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("register sha256: %d", code)
	}

	// Upload: announce, then PUT the bytes to the presigned URL.
	data := make([]byte, 300_000)
	_, _ = rand.Read(data)
	var up struct {
		ID        string    `json:"id"`
		UploadURL string    `json:"upload_url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code := s.api("POST", "/v1/uploads", map[string]any{"size": len(data), "sha256": hexSHA256(data)}, &up); code != http.StatusCreated || up.ID == "" {
		t.Fatalf("POST /v1/uploads: %d %+v", code, up)
	}
	req, _ := http.NewRequest(http.MethodPut, up.UploadURL, bytes.NewReader(data))
	if code, body := plainHTTP(t, req); code != http.StatusOK {
		t.Fatalf("PUT to the upload URL: %d %s", code, body)
	}

	type artifact struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		URL    string `json:"url"`
	}
	type dataJob struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Output struct {
			Files []struct {
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
			} `json:"files"`
		} `json:"output"`
		Artifacts []artifact `json:"artifacts"`
	}
	input := map[string]any{"input": map[string]any{"files": []any{map[string]any{"$file": up.ID}}}}
	submitAndWait := func() dataJob {
		t.Helper()
		var j dataJob
		if code := s.api("POST", "/v1/algorithms/sha256/jobs", input, &j); code != http.StatusAccepted {
			t.Fatalf("submit: %d", code)
		}
		s.waitState(j.ID, "succeeded", 60*time.Second)
		if code := s.api("GET", "/v1/jobs/"+j.ID, nil, &j); code != http.StatusOK {
			t.Fatalf("GET job: %d", code)
		}
		return j
	}
	j := submitAndWait()
	if len(j.Output.Files) != 1 || j.Output.Files[0].Size != int64(len(data)) || j.Output.Files[0].SHA256 != hexSHA256(data) {
		t.Fatalf("output %+v", j.Output)
	}
	if len(j.Artifacts) != 1 || j.Artifacts[0].URL == "" || j.Artifacts[0].SHA256 != hexSHA256(data) || j.Artifacts[0].Size != int64(len(data)) {
		t.Fatalf("artifacts %+v", j.Artifacts)
	}
	req, _ = http.NewRequest(http.MethodGet, j.Artifacts[0].URL, nil)
	code, got := plainHTTP(t, req)
	if code != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("artifact download: %d, %d bytes (want %d, the uploaded bytes)", code, len(got), len(data))
	}

	// A second job: the asset comes from the worker's cache.
	if j2 := submitAndWait(); len(j2.Output.Files) != 1 || j2.Output.Files[0].SHA256 != hexSHA256(data) {
		t.Fatalf("second job's output %+v", j2.Output)
	}
	type cacheView struct {
		Hits, Misses    int64
		DownloadedBytes int64 `json:"downloaded_bytes"`
		Bytes           int64 `json:"bytes"`
	}
	var cache *cacheView
	testwait.Eventually(t, 20*time.Second, func() bool {
		var pools struct {
			Pools []struct {
				Name    string `json:"name"`
				Workers []struct {
					AssetCache *cacheView `json:"asset_cache"`
				} `json:"workers"`
			} `json:"pools"`
		}
		if s.api("GET", "/v1/pools", nil, &pools, "Authorization", "Bearer "+op) != http.StatusOK {
			return false
		}
		for _, p := range pools.Pools {
			if p.Name == s.pool && len(p.Workers) == 1 {
				cache = p.Workers[0].AssetCache
			}
		}
		return cache != nil && cache.Hits == 1
	}, "the worker's asset cache in GET /v1/pools with one hit")
	if want := int64(len(weights)); cache.Misses != 1 || cache.DownloadedBytes != want || cache.Bytes < want {
		t.Fatalf("asset cache %+v: want 1 miss and %d bytes downloaded and held", cache, want)
	}

	// Another tenant cannot name the upload; an upload over the limit is refused.
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	other := s.clientToken("e2e-other")
	if code := s.api("POST", "/v1/algorithms/sha256/jobs", input, &e, "Authorization", "Bearer "+other); code != http.StatusUnprocessableEntity ||
		e.Error.Code != "invalid_input" || !strings.Contains(e.Error.Message, up.ID) {
		t.Fatalf("another tenant's reference: %d %+v, want 422 invalid_input naming the upload", code, e)
	}
	if code := s.api("POST", "/v1/uploads", map[string]any{"size": 2 << 20, "sha256": hexSHA256(data)}, &e); code != http.StatusRequestEntityTooLarge ||
		e.Error.Code != "upload_too_large" {
		t.Fatalf("an upload over the limit: %d %+v, want 413 upload_too_large", code, e)
	}
}
