package executors

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection holds the executor credentials.
const Collection = "executors"

// tokenPrefix starts every executor token: aigwx_<id>_<secret>.
const tokenPrefix = "aigwx_"

// Errors of the credential store.
var (
	ErrNotFound     = errors.New("no such executor")
	ErrUnauthorized = errors.New("unknown or revoked executor token")
)

// Credential is an executor's pool-scoped credential. Only the SHA-256 of
// its token is kept: the token is shown once, when it is created.
type Credential struct {
	ID        string     `json:"id" bson:"_id"`
	Pool      string     `json:"pool" bson:"pool"`
	Name      string     `json:"name" bson:"name"`
	TokenHash string     `json:"-" bson:"token_sha256"`
	CreatedAt time.Time  `json:"created_at" bson:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" bson:"revoked_at,omitempty"`
}

// Credentials stores executor credentials in MongoDB.
type Credentials struct {
	c   *mongo.Collection
	now func() time.Time
}

// NewCredentials returns the store on db.
func NewCredentials(db *mongo.Database) *Credentials {
	return &Credentials{c: db.Collection(Collection), now: time.Now}
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// Create makes a credential for an executor of pool and returns it with its
// token, which is not stored and cannot be read again.
func (s *Credentials) Create(ctx context.Context, pool, name string) (Credential, string, error) {
	cr := Credential{ID: "ex" + randomHex(8), Pool: pool, Name: name, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	token := tokenPrefix + cr.ID + "_" + randomHex(24)
	cr.TokenHash = hashToken(token)
	if _, err := s.c.InsertOne(ctx, cr); err != nil {
		return Credential{}, "", fmt.Errorf("store executor credential: %w", err)
	}
	return cr, token, nil
}

// Get returns the credential id.
func (s *Credentials) Get(ctx context.Context, id string) (Credential, error) {
	var cr Credential
	err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&cr)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Credential{}, ErrNotFound
	}
	if err != nil {
		return Credential{}, fmt.Errorf("read executor %s: %w", id, err)
	}
	return cr, nil
}

// List returns up to limit credentials, newest first.
func (s *Credentials) List(ctx context.Context, limit int) ([]Credential, error) {
	cur, err := s.c.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list executor credentials: %w", err)
	}
	out := []Credential{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list executor credentials: %w", err)
	}
	return out, nil
}

// Revoke marks credential id revoked (idempotent) and returns it.
func (s *Credentials) Revoke(ctx context.Context, id string) (Credential, error) {
	cr, err := s.Get(ctx, id)
	if err != nil || cr.RevokedAt != nil {
		return cr, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if _, err := s.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: now}}}}); err != nil {
		return cr, fmt.Errorf("revoke executor %s: %w", id, err)
	}
	cr.RevokedAt = &now
	return cr, nil
}

// Authenticate returns the live credential token belongs to, or
// ErrUnauthorized (unknown, malformed or revoked).
func (s *Credentials) Authenticate(ctx context.Context, token string) (Credential, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return Credential{}, ErrUnauthorized
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || id == "" {
		return Credential{}, ErrUnauthorized
	}
	cr, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Credential{}, ErrUnauthorized
	}
	if err != nil {
		return Credential{}, err
	}
	if subtle.ConstantTimeCompare([]byte(cr.TokenHash), []byte(hashToken(token))) != 1 || cr.RevokedAt != nil {
		return Credential{}, ErrUnauthorized
	}
	return cr, nil
}
