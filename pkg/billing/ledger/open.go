package ledger

import (
	"context"
	"fmt"

	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Open migrates the billing schema at dsn (postgres://… or sqlite:PATH, as
// for the store) and opens a ledger with its own store.DB, closed by the
// ledger's Close. A process that also needs the tenant store opens one
// store.DB and calls OnDB instead.
func Open(ctx context.Context, dsn string) (Store, error) {
	d, err := store.OpenDB(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s := onDB(d, d.Close)
	if err := s.Ping(ctx); err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return s, nil
}

// OnDB is the ledger on an open, migrated database shared with the store.
// Its Close does nothing: d's owner closes d.
func OnDB(d *store.DB) Store { return onDB(d, func() error { return nil }) }

// onDB builds the ledger on d; its Close calls release instead of closing
// d's pools itself.
func onDB(d *store.DB, release func() error) Store {
	if d.Driver() == store.Postgres {
		main, async := d.Postgres()
		return &pgStore{pool: main, holds: async, release: release}
	}
	return &sqliteStore{db: d.SQLiteWriter(), release: release}
}
