package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// BenchmarkAuthenticate compares, in one run, a known key (right and wrong
// secret) with an unknown id presented again and again (the key-id oracle and
// DB-load case: all answered from memory), next to the two uncached paths
// for scale.
//
//	go test -run '^$' -bench Authenticate ./pkg/billing/store
func BenchmarkAuthenticate(b *testing.B) {
	for _, db := range []struct {
		name string
		dsn  func(b *testing.B) string
	}{
		{"sqlite", func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "db", "bench.db") }},
		{"postgres", func(b *testing.B) string { return testenv.PG(b).NewDatabase(b) }},
	} {
		b.Run(db.name, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, db.dsn(b))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if _, err := st.CreateTenant(ctx, "acme", billing.Limits{}); err != nil {
				b.Fatal(err)
			}
			_, known, err := st.CreateKey(ctx, store.NewKey{Tenant: "acme"})
			if err != nil {
				b.Fatal(err)
			}
			wrong := known[:len(known)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(known, "a")]
			unknown := store.KeyPrefix + "unknownidzzz_" + strings.Repeat("a", 52)
			seq := 0 // fresh ids stay fresh when -count repeats a case
			cached := store.NewAuthenticator(st, 0)
			uncached := store.NewAuthenticator(st, time.Nanosecond)
			for _, c := range []struct {
				name string
				a    *store.Authenticator
				key  func(i int) string
				ok   bool
			}{
				{"known", cached, func(int) string { return known }, true},
				{"known-id-wrong-secret", cached, func(int) string { return wrong }, false},
				{"unknown", cached, func(int) string { return unknown }, false},
				{"known-uncached", uncached, func(int) string { return known }, true},
				{"unknown-fresh-id", cached, func(int) string { seq++; return freshID(seq) }, false},
			} {
				b.Run(c.name, func(b *testing.B) {
					i := 0
					for b.Loop() {
						i++
						if _, err := c.a.Authenticate(ctx, c.key(i)); (err == nil) != c.ok {
							b.Fatalf("Authenticate: %v", err)
						}
					}
				})
			}
		})
	}
}

// freshID is a well-formed key whose id was never seen: each one costs a lookup.
func freshID(i int) string {
	const digits = "abcdefghijklmnopqrstuvwxyz234567"
	id := []byte("zzzzzzzzzzzz")
	for p := len(id) - 1; i > 0 && p >= 0; p-- {
		id[p] = digits[i%32]
		i /= 32
	}
	return store.KeyPrefix + string(id) + "_" + strings.Repeat("a", 52)
}
