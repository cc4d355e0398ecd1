package envconf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGettersReadValuesAndDefaults(t *testing.T) {
	t.Parallel()
	r := Map(map[string]string{
		"S": " v ", "I": "7", "I64": "1024", "F": "0.5", "D": "1m30s", "B": "YES", "L": "a, b  c,,",
		"U": "https://auth.example/jwks", "BLANK": "  ",
	})
	if got := r.String("S", "d"); got != "v" {
		t.Errorf("String = %q", got)
	}
	if got := r.String("BLANK", "d"); got != "d" {
		t.Errorf("String of blanks = %q, want the default", got)
	}
	if got := r.Int("I", 1, 1, 10); got != 7 {
		t.Errorf("Int = %d", got)
	}
	if got := r.Int64("I64", 1, 1, 0); got != 1024 {
		t.Errorf("Int64 = %d", got)
	}
	if got := r.Float("F", 1, 0, 1); got != 0.5 {
		t.Errorf("Float = %v", got)
	}
	if got := r.Duration("D", time.Second, Positive, 0); got != 90*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if got := r.Bool("B", false); !got {
		t.Error("Bool(YES) = false")
	}
	if got := r.List("L"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("List = %q", got)
	}
	if got := r.URL("U", ""); got != "https://auth.example/jwks" {
		t.Errorf("URL = %q", got)
	}
	if got := r.Duration("UNSET", 3*time.Second, 0, 0); got != 3*time.Second {
		t.Errorf("unset Duration = %v", got)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"B", "BLANK", "D", "F", "I", "I64", "L", "S", "U", "UNSET"}
	if !slices.Equal(r.Vars(), want) {
		t.Errorf("Vars = %q, want %q", r.Vars(), want)
	}
}

// TestEveryBadValueIsReportedByName: each bad value is an error naming its
// variable, all joined, and none becomes its default silently.
func TestEveryBadValueIsReportedByName(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"I": "7.5", "IRANGE": "11", "I64": "-1", "F": "2", "D": "90", "DPOS": "0s", "DMIN": "1s", "DMAX": "2h",
		"B": "maybe", "U": "auth.example/jwks", "P": "x", "REQ": "",
	}
	r := Map(bad)
	r.Int("I", 1, 0, 0)
	r.Int("IRANGE", 1, 1, 10)
	r.Int64("I64", 1, 0, 0)
	r.Float("F", 1, 0, 1)
	r.Duration("D", 0, 0, 0)
	r.Duration("DPOS", time.Second, Positive, 0)
	r.Duration("DMIN", 2*time.Second, 3*time.Second/2+time.Second, 0)
	r.Duration("DMAX", time.Second, 0, time.Hour)
	if r.Bool("B", false) {
		t.Error("a bad bool read as true")
	}
	r.URL("U", "")
	Parse(r, "P", 0, func(string) (int, error) { return 0, errors.New("want a number") })
	r.Required("REQ", "say what")
	err := r.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), name+"=") && !strings.Contains(err.Error(), name+" is required") {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != len(bad) {
		t.Errorf("%d errors, want %d: %v", n, len(bad), err)
	}
}

// TestSecretOrEnv: a secret file wins over its variable; without the file
// (or without a secrets directory) the variable counts; a required one
// missing both is an error naming both.
func TestSecretOrEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SecretRedisPassword), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvRedisPassword: "from-env", EnvMongoURI: "mongodb://env/", EnvAdminToken: ""}
	r := Map(env)
	r.SetSecretsDir(dir)
	if got := r.RedisPassword(); got != "from-file" {
		t.Errorf("password = %q, want the file's", got)
	}
	if got := r.MongoURI(true); got != "mongodb://env/" {
		t.Errorf("mongo URI = %q, want the variable's", got)
	}
	r.RequiredSecret(SecretAdminToken, EnvAdminToken)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), SecretAdminToken) || !strings.Contains(err.Error(), EnvAdminToken) {
		t.Errorf("missing admin token: %v, want both ways named", err)
	}
	if got := r.SecretNames(); !slices.Equal(got, []string{SecretAdminToken, SecretMongoURI, SecretRedisPassword}) {
		t.Errorf("SecretNames = %q", got)
	}

	noDir := Map(env)
	if got := noDir.RedisPassword(); got != "from-env" {
		t.Errorf("without a secrets directory: %q, want the variable's", got)
	}
	noDir.MongoURI(true)
	bad := Map(map[string]string{EnvMongoURI: "postgres://x"})
	bad.MongoURI(false)
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), EnvMongoURI) {
		t.Errorf("bad mongo URI: %v", err)
	}
}

func TestSharedSettings(t *testing.T) {
	t.Parallel()
	r := Map(nil)
	jwks, iss, aud := r.Verifier()
	if jwks != DefaultJWKSURL || iss != "aigw" || aud != "aigw-api" || r.MongoDB() != "aigw" {
		t.Errorf("defaults: %q %q %q %q", jwks, iss, aud, r.MongoDB())
	}
	if r.RedisAddrs(false, func(string) ([]string, error) { return []string{"x"}, nil }) != nil {
		t.Error("unset optional redis addresses are not nil")
	}
	r.RedisAddrs(true, nil)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), EnvRedisAddrs) {
		t.Errorf("required redis addresses: %v", err)
	}
	r = Map(map[string]string{EnvMongoDB: "a.b", EnvRedisAddrs: "nohost"})
	r.MongoDB()
	r.RedisAddrs(true, func(string) ([]string, error) { return nil, errors.New("want host:port") })
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), EnvMongoDB) || !strings.Contains(err.Error(), EnvRedisAddrs) {
		t.Errorf("bad shared values: %v", err)
	}
}
