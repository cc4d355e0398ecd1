package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/web"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func get(t *testing.T, s *objstore.Store, key string) []byte {
	t.Helper()
	body, size, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("get %s: %d bytes, Content-Length %d", key, len(b), size)
	}
	return b
}

func TestPutGetRecordsSHA256(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	for _, n := range []int{0, 1, 100_000} {
		data := random(t, n)
		// A plain io.Reader (not seekable): the put streams it once.
		obj, err := s.Put(ctx(t), "a/obj", io.MultiReader(bytes.NewReader(data)), int64(n))
		if err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		if obj.Size != int64(n) || obj.SHA256 != hexSum(data) {
			t.Fatalf("put %d bytes: %+v, want sha256 %s", n, obj, hexSum(data))
		}
		if got := get(t, s, "a/obj"); !bytes.Equal(got, data) {
			t.Fatalf("get after put of %d bytes: %d bytes back, not the same", n, len(got))
		}
	}
}

func TestMultipartPut(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	s.SetPartSize(5 << 20) // S3's least part size
	data := random(t, 11<<20+123)
	obj, err := s.Put(ctx(t), "big/file.bin", io.MultiReader(bytes.NewReader(data)), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if obj.SHA256 != hexSum(data) || obj.Size != int64(len(data)) {
		t.Fatalf("multipart put: %+v", obj)
	}
	if got := get(t, s, "big/file.bin"); !bytes.Equal(got, data) {
		t.Fatalf("multipart object differs: %d bytes back", len(got))
	}
}

func TestShortBodyLeavesNoObject(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	s.SetPartSize(5 << 20)
	for _, size := range []int64{10, 6 << 20} {
		_, err := s.Put(ctx(t), "short", bytes.NewReader(make([]byte, 5)), size)
		if !errors.Is(err, objstore.ErrShortBody) {
			t.Fatalf("put of 5 bytes as %d: %v, want ErrShortBody", size, err)
		}
		if _, err := s.Stat(ctx(t), "short"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("after a short put of %d: stat says %v, want ErrNotFound", size, err)
		}
	}
}

func TestPresignedGet(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	data := []byte("presigned content")
	if _, err := s.Put(ctx(t), "p/x.txt", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	u, exp, err := s.PresignGet(ctx(t), "p/x.txt", time.Minute, "x.txt")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 50*time.Second || d > time.Minute {
		t.Fatalf("expires in %v, want about a minute", d)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("GET presigned: %d %q", resp.StatusCode, b)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="x.txt"`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	// A tampered URL is refused.
	resp, err = http.Get(strings.Replace(u, "p/x.txt", "p/y.txt", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered URL: %d, want 403", resp.StatusCode)
	}
}

func TestPresignedURLAfterExpiryIs403(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	if _, err := s.Put(ctx(t), "e", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	// S3 signatures count whole seconds: a 1 s URL is expired 2 s later.
	u, exp, err := s.PresignGet(ctx(t), "e", time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	// An upload URL too: nothing is stored through it once it expired.
	pu, pexp, err := s.PresignPut(ctx(t), "up/late", 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if pexp.After(exp) {
		exp = pexp
	}
	time.Sleep(time.Until(exp) + 1500*time.Millisecond) // the expiry itself is what is tested
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired URL: %d %s, want 403", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodPut, pu, strings.NewReader("x"))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired upload URL: %d %s, want 403", resp.StatusCode, b)
	}
	if _, err := s.Stat(ctx(t), "up/late"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("an object stored through an expired upload URL: %v", err)
	}
}

func TestPresignedPutTakesExactlyItsSize(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	data := []byte("uploaded by a client")
	u, _, err := s.PresignPut(ctx(t), "up/1", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	put := func(body []byte) int {
		req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(append(data, "more"...)); code == http.StatusOK {
		t.Fatalf("PUT of another size: %d, want a refusal", code)
	}
	if code := put(data); code != http.StatusOK {
		t.Fatalf("PUT presigned: %d", code)
	}
	if got := get(t, s, "up/1"); !bytes.Equal(got, data) {
		t.Fatalf("uploaded %q", got)
	}
}

func TestDeletePrefix(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	for _, k := range []string{"jobs/a/1", "jobs/a/2/x", "jobs/ab/1", "jobs/b/1"} {
		if _, err := s.Put(ctx(t), k, strings.NewReader(k), int64(len(k))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeletePrefix(ctx(t), "jobs/a/")
	if err != nil || n != 2 {
		t.Fatalf("delete prefix: %d, %v; want 2", n, err)
	}
	left, err := s.List(ctx(t), "jobs/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range left {
		keys = append(keys, o.Key)
	}
	if strings.Join(keys, ",") != "jobs/ab/1,jobs/b/1" {
		t.Fatalf("left %v", keys)
	}
	if _, err := s.DeletePrefix(ctx(t), ""); err == nil {
		t.Fatal("an empty prefix was accepted")
	}
}

func TestMissingObjectIsNotFound(t *testing.T) {
	t.Parallel()
	s, _ := objstoretest.Store(t)
	if _, _, err := s.Get(ctx(t), "nope"); !errors.Is(err, objstore.ErrNotFound) || objstore.IsUnavailable(err) {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := s.Stat(ctx(t), "nope"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat missing: %v", err)
	}
	if err := s.Delete(ctx(t), "nope"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestWrongKeysAreForbiddenNotAnOutage(t *testing.T) {
	t.Parallel()
	_, c := objstoretest.Store(t)
	c.SecretKey = "wrong"
	s, err := objstore.New(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx(t), "k", strings.NewReader("x"), 1)
	if !errors.Is(err, objstore.ErrForbidden) || objstore.IsUnavailable(err) || web.IsUnavailable(err) {
		t.Fatalf("put with a wrong key: %v, want ErrForbidden and no outage", err)
	}
}

func TestDeadStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, err := objstore.New(objstore.Config{Endpoint: "http://" + addr, Bucket: "b-b", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx(t), "k", strings.NewReader("x"), 1)
	if !errors.Is(err, objstore.ErrUnavailable) || !web.IsUnavailable(err) {
		t.Fatalf("put to a dead store: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Get(ctx(t), "k"); !objstore.IsUnavailable(err) {
		t.Fatalf("get from a dead store: %v", err)
	}
	if err := s.EnsureBucket(ctx(t)); !objstore.IsUnavailable(err) {
		t.Fatalf("ensure bucket on a dead store: %v", err)
	}
}

func TestStoreAnswering503IsUnavailable(t *testing.T) {
	t.Parallel()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<Error><Code>SlowDown</Code><Message>slow down</Message></Error>`)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	s, err := objstore.New(objstore.Config{Endpoint: "http://" + l.Addr().String(), Bucket: "b-b", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx(t), "k"); !objstore.IsUnavailable(err) || !web.IsUnavailable(err) {
		t.Fatalf("stat against a 503: %v, want ErrUnavailable", err)
	}
}

func TestReadConfig(t *testing.T) {
	r := envconf.Map(map[string]string{})
	if c := objstore.ReadConfig(r); c.Enabled() || r.Err() != nil || c.Bucket != "aigw" {
		t.Fatalf("unset: %+v %v", c, r.Err())
	}
	r = envconf.Map(map[string]string{"AIGW_S3_ENDPOINT": "http://127.0.0.1:7070/", "AIGW_S3_ACCESS_KEY": "a",
		"AIGW_S3_SECRET_KEY": "s", "AIGW_S3_BUCKET": "data-1", "AIGW_S3_PUBLIC_ENDPOINT": "https://s3.example.com"})
	c := objstore.ReadConfig(r)
	if r.Err() != nil || !c.Enabled() || c.Endpoint != "http://127.0.0.1:7070" || c.Bucket != "data-1" ||
		c.PublicEndpoint != "https://s3.example.com" || c.Region != "us-east-1" {
		t.Fatalf("set: %+v %v", c, r.Err())
	}
	for _, bad := range []map[string]string{
		{"AIGW_S3_ENDPOINT": "127.0.0.1:7070", "AIGW_S3_ACCESS_KEY": "a", "AIGW_S3_SECRET_KEY": "s"},
		{"AIGW_S3_ENDPOINT": "http://h/path", "AIGW_S3_ACCESS_KEY": "a", "AIGW_S3_SECRET_KEY": "s"},
		{"AIGW_S3_ENDPOINT": "http://h"},
		{"AIGW_S3_BUCKET": "Bad_Bucket"},
		{"AIGW_S3_BUCKET": "-ab"},
	} {
		r := envconf.Map(bad)
		objstore.ReadConfig(r)
		if r.Err() == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
