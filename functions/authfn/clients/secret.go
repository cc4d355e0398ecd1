package clients

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for client secrets (OWASP's minimum configuration:
// 19 MiB, 2 passes, 1 lane).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Bounds on parameters read back from a stored hash, so that a corrupt record
// cannot make one token request take all the memory.
const (
	maxArgonTime   = 10
	maxArgonMemory = 256 * 1024 // KiB
	maxArgonLanes  = 16
)

var phcB64 = base64.RawStdEncoding

// HashSecret hashes secret with Argon2id and a random salt, in the PHC string
// format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashSecret(secret string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(secret), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		phcB64.EncodeToString(salt), phcB64.EncodeToString(key)), nil
}

// VerifySecret reports whether secret matches the PHC-format Argon2id hash,
// comparing in constant time. A malformed hash is an error.
func VerifySecret(secret, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errors.New("secret hash: not a PHC argon2id string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("secret hash: version %q, want v=%d", parts[2], argon2.Version)
	}
	var m, t uint32
	var p uint8
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 {
		return false, fmt.Errorf("secret hash: parameters %q", parts[3])
	}
	if m < 8 || m > maxArgonMemory || t < 1 || t > maxArgonTime || p < 1 || p > maxArgonLanes {
		return false, fmt.Errorf("secret hash: parameters %q out of bounds", parts[3])
	}
	salt, err := phcB64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errors.New("secret hash: bad salt")
	}
	want, err := phcB64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errors.New("secret hash: bad key")
	}
	got := argon2.IDKey([]byte(secret), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is verified against when a client does not exist, so that an
// unknown client id takes as long to refuse as a wrong secret.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashSecret(rand.Text())
	if err != nil {
		panic(fmt.Sprintf("clients: hash a dummy secret: %v", err))
	}
	return h
})

// BurnVerify spends the time of one VerifySecret, for a client that does not exist.
func BurnVerify(secret string) {
	_, _ = VerifySecret(secret, dummyHash())
}

// newID returns a fresh client id: "cl_" and 26 base32 characters (130 bits).
func newID() string { return "cl_" + strings.ToLower(rand.Text()) }

// newSecret returns a fresh client secret: "cs_" and 256 random bits, base64url.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "cs_" + base64.RawURLEncoding.EncodeToString(b), nil
}
