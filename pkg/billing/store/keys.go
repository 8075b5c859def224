package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// KeyPrefix starts every llmctl API key.
const KeyPrefix = "sk-llm-"

const (
	publicIDLen = 12 // base32 chars: 60 bits, enough to never collide in practice
	secretBytes = 32 // 256 bits of secret
)

// lower-case base32 without padding: URL- and shell-safe, no '_' (the separator).
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newKeyMaterial returns a public id, the full key string and the secret's hash.
func newKeyMaterial() (id, full string, hash []byte, err error) {
	idb := make([]byte, 8)
	sec := make([]byte, secretBytes)
	if _, err := rand.Read(idb); err != nil {
		return "", "", nil, fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(sec); err != nil {
		return "", "", nil, fmt.Errorf("generate key secret: %w", err)
	}
	id = keyEncoding.EncodeToString(idb)[:publicIDLen]
	secret := keyEncoding.EncodeToString(sec)
	h := sha256.Sum256([]byte(secret))
	return id, KeyPrefix + id + "_" + secret, h[:], nil
}

// ParseKey splits a presented key into its public id and secret. It checks
// only the shape; the secret is verified against the stored hash.
func ParseKey(key string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: not an llmctl key", ErrInvalidKey)
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != publicIDLen || secret == "" || len(secret) > 128 {
		return "", "", fmt.Errorf("%w: malformed", ErrInvalidKey)
	}
	for _, s := range []string{id, secret} {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
				return "", "", fmt.Errorf("%w: malformed", ErrInvalidKey)
			}
		}
	}
	return id, secret, nil
}

// HashSecret is the stored form of a key's secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// newID returns a prefixed random id such as "ten_…".
func newID(prefix string) (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + keyEncoding.EncodeToString(b), nil
}
