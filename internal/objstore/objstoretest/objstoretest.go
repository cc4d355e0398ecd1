// Package objstoretest gives integration tests a bucket of their own on the
// real object store: $AIGW_S3_ENDPOINT when set (scripts/env.sh sets the
// local one), else the local server of scripts/objstore.sh with its dev keys.
// A store that does not answer skips the test, or fails it where servers are
// required (testenv.Required: CI=true).
package objstoretest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/testenv"
)

// Local defaults, as scripts/env.sh exports them for scripts/objstore.sh.
const (
	LocalEndpoint  = "http://127.0.0.1:7070"
	LocalAccessKey = "aigw-dev"
	LocalSecretKey = "aigw-dev-secret-key-loopback-only"
)

// Config returns the store's settings for t with a fresh bucket name (not
// created).
func Config(t testing.TB) objstore.Config {
	t.Helper()
	c := objstore.ReadConfig(envconf.New(os.LookupEnv))
	if c.Endpoint == "" {
		c.Endpoint, c.AccessKey, c.SecretKey = LocalEndpoint, LocalAccessKey, LocalSecretKey
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		t.Fatalf("object store endpoint %q: %v", c.Endpoint, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		msg := fmt.Sprintf("object store at %s does not answer: %v", c.Endpoint, err)
		if testenv.Required() {
			t.Fatalf("%s (CI=true: integration tests may not skip; start it with `make up` or scripts/services.sh up)", msg)
		}
		t.Skipf("%s; start it with scripts/services.sh up", msg)
	}
	_ = conn.Close()
	c.Bucket = strings.ReplaceAll(testenv.UniqueName(t, 63), "_", "-")
	c.Bucket = strings.Trim(c.Bucket, "-")
	if len(c.Bucket) < 3 {
		c.Bucket += "-bucket"
	}
	return c
}

// Store returns a store on a bucket of t's own, created now and emptied and
// removed when t ends.
func Store(t testing.TB) (*objstore.Store, objstore.Config) {
	t.Helper()
	c := Config(t)
	s, err := objstore.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("create bucket %s: %v", c.Bucket, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.RemoveBucket(ctx); err != nil {
			t.Logf("remove bucket %s: %v", c.Bucket, err)
		}
	})
	return s, c
}
