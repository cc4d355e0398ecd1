// Package clients keeps aigw's API clients in MongoDB: each has an id, a
// tenant, scopes and an Argon2id hash of its secret, which is shown once, at
// creation, and never stored in clear.
package clients

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	jwtauth "github.com/aigw/aigw/internal/auth"
)

var (
	// ErrNotFound: no client with that id.
	ErrNotFound = errors.New("client not found")
	// ErrInvalid is matched by every *ValidationError.
	ErrInvalid = errors.New("invalid client")
)

// ValidationError says which field of a Spec is wrong and why.
type ValidationError struct {
	Field, Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Client is a stored API client.
type Client struct {
	ID         string     `bson:"_id"`
	Name       string     `bson:"name"`
	Tenant     string     `bson:"tenant"`
	Scopes     []string   `bson:"scopes"`
	SecretHash string     `bson:"secret_hash"`
	CreatedAt  time.Time  `bson:"created_at"`
	RevokedAt  *time.Time `bson:"revoked_at,omitempty"`
}

// Revoked reports whether the client may no longer get tokens.
func (c Client) Revoked() bool { return c.RevokedAt != nil }

// Spec is what an administrator gives to create a client.
type Spec struct {
	Name   string
	Tenant string
	Scopes []string
}

// MaxNameLen bounds a client's name.
const MaxNameLen = 100

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Normalize checks s and returns it with white space trimmed and scopes
// sorted and deduplicated. Errors are *ValidationError.
func (s Spec) Normalize() (Spec, error) {
	s.Name = strings.TrimSpace(s.Name)
	switch {
	case s.Name == "":
		return s, &ValidationError{"name", "is required"}
	case len(s.Name) > MaxNameLen:
		return s, &ValidationError{"name", fmt.Sprintf("is over %d bytes", MaxNameLen)}
	case strings.ContainsFunc(s.Name, func(r rune) bool { return !unicode.IsPrint(r) }):
		return s, &ValidationError{"name", "has control or invalid characters"}
	}
	if !tenantRE.MatchString(s.Tenant) {
		return s, &ValidationError{"tenant", fmt.Sprintf("%q must be 1-63 of a-z, 0-9, '_' and '-', starting with a letter or digit", s.Tenant)}
	}
	if len(s.Scopes) == 0 {
		return s, &ValidationError{"scopes", fmt.Sprintf("name at least one of %s", strings.Join(jwtauth.ClientScopes(), ", "))}
	}
	scopes := make([]string, 0, len(s.Scopes))
	for _, sc := range s.Scopes {
		switch {
		case jwtauth.OperatorScope(sc):
			return s, &ValidationError{"scopes", fmt.Sprintf("%q is an operator scope and no API client may hold it: operators get it in a token from POST /admin/token with the admin token; a client may hold %s",
				sc, strings.Join(jwtauth.ClientScopes(), ", "))}
		case !jwtauth.KnownScope(sc):
			return s, &ValidationError{"scopes", fmt.Sprintf("unknown scope %q; a client may hold %s", sc, strings.Join(jwtauth.ClientScopes(), ", "))}
		}
		scopes = append(scopes, sc)
	}
	slices.Sort(scopes)
	s.Scopes = slices.Compact(scopes)
	return s, nil
}
