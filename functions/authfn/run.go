package authfn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"time"

	"github.com/aigw/aigw/functions/authfn/clients"
	jwtauth "github.com/aigw/aigw/internal/auth"
	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/mongoconn"
)

// pingTimeout bounds the health check's MongoDB ping.
const pingTimeout = 2 * time.Second

// Serve runs the auth function until ctx ends: it reads its environment and
// secrets, connects to MongoDB and serves the OpenFaaS function contract.
func Serve(ctx context.Context, log *slog.Logger, getenv func(string) string) error {
	r := envconf.FromGetenv(getenv)
	fc := fnserve.Read(r)
	cfg := Read(r)
	sec := ReadSecretsFrom(r, fc)
	if err := r.Err(); err != nil {
		return err
	}
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: sec.MongoURI})
	if err != nil {
		return err
	}
	defer mongoconn.Close(mc)
	store, err := clients.NewStore(ctx, mc.Database(cfg.MongoDB), nil)
	if err != nil {
		return err
	}
	h, err := NewHandler(Deps{Log: log, Config: cfg, Clients: store, Keys: sec.Keys, AdminToken: sec.AdminToken,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			return mc.Ping(ctx, nil)
		}})
	if err != nil {
		return err
	}
	kids := make([]string, len(sec.Keys))
	for i, k := range sec.Keys {
		kids[i] = k.ID
	}
	log.Info("auth ready", "issuer", cfg.Issuer, "audience", cfg.Audience, "token_ttl", cfg.TokenTTL.String(), "kids", kids)
	return fnserve.Serve(ctx, log, fc, h)
}

// CreateClient creates a client straight in MongoDB ($AIGW_MONGO_URI,
// database $AIGW_MONGO_DB), for bootstrapping a fresh environment; it returns
// the client and its secret.
func CreateClient(ctx context.Context, getenv func(string) string, spec clients.Spec) (clients.Client, string, error) {
	r := envconf.FromGetenv(getenv)
	cfg := Read(r)
	uri := r.MongoURI(true)
	if err := r.Err(); err != nil {
		return clients.Client{}, "", err
	}
	mc, err := mongoconn.Open(ctx, mongoconn.Options{URI: uri})
	if err != nil {
		return clients.Client{}, "", err
	}
	defer mongoconn.Close(mc)
	store, err := clients.NewStore(ctx, mc.Database(cfg.MongoDB), nil)
	if err != nil {
		return clients.Client{}, "", err
	}
	return store.Create(ctx, spec)
}

// GenerateKeyPEM returns a fresh Ed25519 signing key as PKCS#8 PEM, the
// format of the aigw-jwt-signing-key secret.
func GenerateKeyPEM() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return jwtauth.MarshalPrivateKeyPEM(priv)
}
