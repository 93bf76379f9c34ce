package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// SchemaVersion is the schema this build writes. A database created by a
// newer build (a higher schema_version) is refused, never touched; an
// older one is migrated forward in one transaction by migrations.
const SchemaVersion = 3

// metaTable holds name/value rows: schema_version, last_version (the store
// revision: the revision of the last committed change, so revisions never
// go back, not even after a key is deleted and recreated or the process
// restarts) and, from schema version 2, compact_revision (the newest
// revision whose history row was pruned: history holds every revision
// after it). Its shape never changes, so any build can read
// schema_version from any database.
const metaTable = "kvhost_meta"

// migrations(...)[i] takes a database from schema version i to i+1.
// withoutRowID is only for BenchmarkLayout, which measures the choice of
// an ordinary rowid table.
func migrations(withoutRowID bool) sqlkv.Migrations[execer] {
	return sqlkv.Migrations[execer]{0: func(ctx context.Context, c execer) error {
		layout := ""
		if withoutRowID {
			layout = " WITHOUT ROWID"
		}
		for _, stmt := range []string{
			`CREATE TABLE ` + metaTable + ` (
				name  TEXT PRIMARY KEY NOT NULL,
				value INTEGER NOT NULL
			) WITHOUT ROWID`,
			`INSERT INTO ` + metaTable + ` (name, value) VALUES ('schema_version', 0), ('last_version', 0)`,
			// The key is TEXT with the default BINARY collation, which
			// compares bytes: the contract's order. The table keeps its
			// rowid: new rows append to the table and only the key index,
			// whose entries are small, takes random inserts. WITHOUT ROWID
			// made a batch of 1K random keys into 100K about twice as
			// slow, for no gain on gets or scans (BenchmarkLayout,
			// docs/PERFORMANCE.md).
			`CREATE TABLE kv (
				key        TEXT PRIMARY KEY NOT NULL,
				value      BLOB NOT NULL,
				version    INTEGER NOT NULL,
				expires_at INTEGER NOT NULL DEFAULT 0, -- unix ms, 0 = never
				created_at INTEGER NOT NULL,          -- unix ms
				updated_at INTEGER NOT NULL           -- unix ms
			)` + layout,
			// Only keys with a TTL are indexed: cleanup finds the expired
			// ones without reading the rest.
			`CREATE INDEX kv_expires_at ON kv (expires_at) WHERE expires_at > 0`,
		} {
			if _, err := c.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	},
		// Version 2: revisions for every change and a history of them. The
		// history of a migrated database starts empty: its compact revision is
		// its last version, so a watch can start at the next revision.
		1: func(ctx context.Context, c execer) error {
			for _, stmt := range []string{
				// Each row is a chunk of one commit's changes, one per
				// revision from revision to last, encoded in events (chunk.go).
				// A row per change instead doubled what a batch of 1K puts
				// costs, and pruning such rows from the front of the table
				// cost as much again; a chunk is one insert and one delete
				// (docs/PERFORMANCE.md). revision is the rowid: rows append,
				// and pruning deletes a range from the front.
				`CREATE TABLE kv_history (
				revision INTEGER PRIMARY KEY,
				last     INTEGER NOT NULL,
				events   BLOB NOT NULL
			)`,
				`INSERT INTO ` + metaTable + ` (name, value)
				SELECT 'compact_revision', value FROM ` + metaTable + ` WHERE name = 'last_version'`,
			} {
				if _, err := c.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			return nil
		},
		// Version 3: a covering index for count and stats. Without it both
		// read the key index, then every row for expires_at and the value's
		// length: at a million keys 2 s. kv_cover holds what they need,
		// key, expiry and size (key plus value bytes, stored: SQLite does
		// not cover from an indexed virtual column), so they read only the
		// index. Each write pays one more index entry (docs/PERFORMANCE.md,
		// docs/RATIONALE.md "Count and stats read a covering index").
		2: func(ctx context.Context, c execer) error {
			for _, stmt := range []string{
				`ALTER TABLE kv ADD COLUMN size INTEGER NOT NULL DEFAULT 0`, // octet_length(key) + length(value)
				`UPDATE kv SET size = octet_length(key) + length(value)`,
				`CREATE INDEX kv_cover ON kv (key, expires_at, size)`,
			} {
				if _, err := c.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			return nil
		}}
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var sqliteHeader = []byte("SQLite format 3\x00")

// checkFile refuses, before SQLite opens it, a path that exists but is not
// a SQLite database: SQLite would refuse it too, but only after the
// connection's pragmas ran, and its message does not name the file.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: %w: open %s: %w", kv.ErrUnavailable, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("sqlite: %w: stat %s: %w", kv.ErrUnavailable, path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlite: %w: %s is not a regular file", kv.ErrInvalidArgument, path)
	}
	if fi.Size() == 0 {
		return nil // SQLite treats an empty file as an empty database
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("sqlite: %w: %s is not a SQLite database (no SQLite header); refusing to touch it",
			kv.ErrInvalidArgument, path)
	}
	return nil
}

// inspect reads the schema version of the database on c: 0 for an empty
// database. A database with tables but no kvhost meta table belongs to
// something else and is refused.
func inspect(ctx context.Context, c execer, path string) (int, error) {
	rows, err := c.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: read schema of %s: %w", path, mapErr(err))
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return 0, fmt.Errorf("sqlite: read schema of %s: %w", path, mapErr(err))
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("sqlite: read schema of %s: %w", path, mapErr(err))
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlite: read schema of %s: %w", path, mapErr(err))
	}
	if len(tables) == 0 {
		return 0, nil
	}
	sort.Strings(tables)
	found := false
	for _, t := range tables {
		found = found || t == metaTable
	}
	if !found {
		return 0, fmt.Errorf("sqlite: %w: %s is a SQLite database but not a kvhost one (tables: %s); refusing to touch it",
			kv.ErrInvalidArgument, path, strings.Join(tables, ", "))
	}
	var v int64
	if err := c.QueryRowContext(ctx, `SELECT value FROM `+metaTable+` WHERE name = 'schema_version'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: %w: %s: read schema_version: %v", kv.ErrUnavailable, path, err)
	}
	if err := migrations(false).Check(int(v), path); err != nil {
		return 0, fmt.Errorf("sqlite: %w", err)
	}
	return int(v), nil
}

// migrate brings the database from version from to SchemaVersion in one
// transaction: a crash mid-way leaves the old version intact.
func migrate(ctx context.Context, conn *sql.Conn, from int, path string, withoutRowID bool) error {
	if from == SchemaVersion {
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, mapErr(err))
	}
	defer tx.Rollback()
	if err := migrations(withoutRowID).Apply(ctx, tx, from, path); err != nil {
		return fmt.Errorf("sqlite: %w", mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+metaTable+` SET value = ? WHERE name = 'schema_version'`, SchemaVersion); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, mapErr(err))
	}
	return nil
}
