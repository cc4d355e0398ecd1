package clients_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/functions/authfn/clients"
	"github.com/aigw/aigw/internal/testenv"
)

func TestHashSecret(t *testing.T) {
	t.Parallel()
	h, err := clients.HashSecret("cs_secret")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	if h2, _ := clients.HashSecret("cs_secret"); h2 == h {
		t.Error("two hashes of one secret are equal: no salt")
	}
	if ok, err := clients.VerifySecret("cs_secret", h); !ok || err != nil {
		t.Errorf("right secret: %v, %v", ok, err)
	}
	for _, wrong := range []string{"cs_secreT", "", "cs_secret "} {
		if ok, err := clients.VerifySecret(wrong, h); ok || err != nil {
			t.Errorf("secret %q: %v, %v", wrong, ok, err)
		}
	}
	parts := strings.Split(h, "$")
	for name, bad := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":       strings.Replace(h, "argon2id", "argon2i", 1),
		"version":       strings.Replace(h, "v=19", "v=16", 1),
		"huge memory":   strings.Replace(h, "m=19456", "m=99999999", 1),
		"zero time":     strings.Replace(h, "t=2", "t=0", 1),
		"bad salt":      strings.Join([]string{"", parts[1], parts[2], parts[3], "!!", parts[5]}, "$"),
		"short key":     strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
		"missing parts": "$argon2id$v=19$m=19456,t=2,p=1",
	} {
		if ok, err := clients.VerifySecret("cs_secret", bad); ok || err == nil {
			t.Errorf("%s: %v, %v", name, ok, err)
		}
	}
}

func TestSpecNormalize(t *testing.T) {
	t.Parallel()
	s, err := clients.Spec{Name: "  CI bot ", Tenant: "acme-1", Scopes: []string{"jobs:write", "jobs:read", "jobs:write"}}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "CI bot" || strings.Join(s.Scopes, ",") != "jobs:read,jobs:write" {
		t.Errorf("normalized = %+v", s)
	}
	for name, spec := range map[string]clients.Spec{
		"no name":       {Tenant: "acme", Scopes: []string{"jobs:read"}},
		"long name":     {Name: strings.Repeat("n", 101), Tenant: "acme", Scopes: []string{"jobs:read"}},
		"control name":  {Name: "a\x00b", Tenant: "acme", Scopes: []string{"jobs:read"}},
		"no tenant":     {Name: "n", Scopes: []string{"jobs:read"}},
		"upper tenant":  {Name: "n", Tenant: "Acme", Scopes: []string{"jobs:read"}},
		"long tenant":   {Name: "n", Tenant: strings.Repeat("a", 64), Scopes: []string{"jobs:read"}},
		"no scopes":     {Name: "n", Tenant: "acme"},
		"unknown scope": {Name: "n", Tenant: "acme", Scopes: []string{"jobs:read", "root"}},
	} {
		var ve *clients.ValidationError
		if _, err := spec.Normalize(); !errors.As(err, &ve) || !errors.Is(err, clients.ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, err := clients.NewStore(t.Context(), db, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	c, secret, err := s.Create(t.Context(), clients.Spec{Name: "bot", Tenant: "acme", Scopes: []string{"jobs:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ID, "cl_") || !strings.HasPrefix(secret, "cs_") || strings.Contains(c.SecretHash, secret) {
		t.Errorf("created %+v with secret %q", c, secret)
	}
	got, err := s.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tenant != "acme" || !got.CreatedAt.Equal(now) || got.Revoked() {
		t.Errorf("got %+v", got)
	}
	if ok, err := clients.VerifySecret(secret, got.SecretHash); !ok || err != nil {
		t.Errorf("stored hash does not match the secret: %v %v", ok, err)
	}
	if _, _, err := s.Create(t.Context(), clients.Spec{Name: "x", Tenant: "acme"}); !errors.Is(err, clients.ErrInvalid) {
		t.Errorf("invalid spec: %v", err)
	}
	if _, err := s.Get(t.Context(), "cl_missing"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	now = now.Add(time.Hour)
	if err := s.Revoke(t.Context(), c.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Get(t.Context(), c.ID)
	if !got.Revoked() || !got.RevokedAt.Equal(now) {
		t.Errorf("revoked = %v", got.RevokedAt)
	}
	now = now.Add(time.Hour)
	if err := s.Revoke(t.Context(), c.ID); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	if got, _ = s.Get(t.Context(), c.ID); !got.RevokedAt.Equal(now.Add(-time.Hour)) {
		t.Errorf("second revoke moved revoked_at to %v", got.RevokedAt)
	}
	if err := s.Revoke(t.Context(), "cl_missing"); !errors.Is(err, clients.ErrNotFound) {
		t.Errorf("revoke missing: %v", err)
	}
	list, err := s.List(t.Context(), "")
	if err != nil || len(list) != 1 {
		t.Errorf("list: %v, %v", list, err)
	}
	if list, _ := s.List(t.Context(), "globex"); len(list) != 0 {
		t.Errorf("list of another tenant: %v", list)
	}
}
