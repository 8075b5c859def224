package ledger

import (
	"context"
	"fmt"

	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Open migrates the billing schema at dsn (postgres://… or sqlite:PATH, as
// for the store) and opens the ledger's own connections to it.
func Open(ctx context.Context, dsn string) (Store, error) {
	driver, target, err := store.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, dsn); err != nil {
		return nil, err
	}
	if driver == store.Postgres {
		return OpenPostgres(ctx, target)
	}
	db, err := store.OpenSQLite(target)
	if err != nil {
		return nil, err
	}
	s := NewSQLite(db)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return s, nil
}
