package store

import "database/sql"

// StoreHandleForTest is the SQLite handle the store uses (nil on PostgreSQL).
func (d *DB) StoreHandleForTest() *sql.DB { return d.sqlite }
