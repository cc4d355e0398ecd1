package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/testenv"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := run(t.Context(), log, args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

func TestVersionAndGenkey(t *testing.T) {
	t.Parallel()
	if out, err := runCmd(t, nil, "version"); err != nil || out != "dev\n" {
		t.Errorf("version: %q, %v", out, err)
	}
	out, err := runCmd(t, nil, "genkey")
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwtauth.ParsePrivateKeyPEM([]byte(out))
	if err != nil || k.Alg != jwtauth.AlgEdDSA {
		t.Errorf("genkey output: %+v, %v", k, err)
	}
	if _, err := runCmd(t, nil, "frobnicate"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown command: %v", err)
	}
}

func TestServeFailsWithoutSecrets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	err := run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), nil,
		func(k string) string {
			return map[string]string{"AIGW_SECRETS_DIR": t.TempDir(), "AIGW_MONGO_URI": "mongodb://127.0.0.1:1/"}[k]
		}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "aigw-jwt-signing-key") {
		t.Errorf("serve without a signing key: %v", err)
	}
}

func TestCreateClient(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	env := map[string]string{"AIGW_MONGO_URI": testenv.MongoURI(t), "AIGW_MONGO_DB": db.Name()}
	out, err := runCmd(t, env, "create-client", "-name", "CI", "-tenant", "acme", "-scopes", "jobs:read, jobs:write")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^AIGW_CLIENT_ID=(cl_[a-z2-7]+)\nAIGW_CLIENT_SECRET=(cs_[A-Za-z0-9_-]+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output %q is not two shell assignments", out)
	}
	var c clients.Client
	if err := db.Collection(clients.Collection).FindOne(t.Context(), bson.D{{Key: "_id", Value: m[1]}}).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Tenant != "acme" || strings.Join(c.Scopes, " ") != "jobs:read jobs:write" {
		t.Errorf("stored %+v", c)
	}
	if ok, err := clients.VerifySecret(m[2], c.SecretHash); !ok || err != nil {
		t.Errorf("printed secret does not match: %v %v", ok, err)
	}
	if _, err := runCmd(t, env, "create-client", "-name", "CI", "-tenant", "acme", "-scopes", "root"); err == nil {
		t.Error("unknown scope accepted")
	}
	if _, err := runCmd(t, nil, "create-client", "-name", "CI", "-tenant", "acme", "-scopes", "jobs:read"); err == nil ||
		!strings.Contains(err.Error(), "AIGW_MONGO_URI") {
		t.Errorf("no AIGW_MONGO_URI: %v", err)
	}
}
