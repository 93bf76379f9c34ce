package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kvhost/kvhost/plugins/internal/sqlkv"
)

// The schema is the plugin's own: tables live in Config.Schema, and
// meta.schema_version says how many of schemaSteps have run. Migrations run
// in one transaction under an advisory lock keyed by the schema name, so
// several hosts starting at once migrate once: the first runs them, the
// others wait for its commit and find nothing left to do. A schema newer
// than this plugin knows is refused rather than written to.
//
// Keys are text COLLATE "C": byte order, which for UTF-8 is code point
// order, so ORDER BY and range scans are the contract's byte order. The
// primary key index carries expires_at and size, so Count and Stats can
// be index-only scans. History is the log that every host reads to
// publish watch events and replay from a revision: since step 2 a row of
// history_chunks per commit (a chunk of up to sqlkv.ChunkEvents changes),
// keyed by its first revision, with its last.
var schemaSteps = []string{
	// 1: the store.
	`CREATE TABLE {s}.kv (
		key        text COLLATE "C" NOT NULL,
		value      bytea NOT NULL,
		version    bigint NOT NULL,
		expires_at bigint NOT NULL DEFAULT 0,
		size       bigint GENERATED ALWAYS AS (octet_length(key) + octet_length(value)) STORED,
		CONSTRAINT kv_pkey PRIMARY KEY (key) INCLUDE (expires_at, size)
	);
	CREATE INDEX kv_expiry ON {s}.kv (expires_at) WHERE expires_at > 0;
	CREATE TABLE {s}.history (
		rev        bigint PRIMARY KEY,
		type       smallint NOT NULL,
		key        text COLLATE "C" NOT NULL,
		value      bytea,
		version    bigint NOT NULL,
		expires_at bigint NOT NULL
	);`,
	// 2: history in chunks (sqlkv.EncodeChunks): one row per commit
	// instead of one per change, so a batch of 1K puts writes one history
	// row, not a thousand, and followers read it back as one. The history
	// of step 1 is not converted: it is dropped, and the compact revision
	// moved to the head, so a watch resuming from before the upgrade gets
	// the compacted error and lists again, as after any pruning. The new
	// table has a new name, so that every statement of a host still
	// running a step-1 plugin fails (its writes, its follower's reads, and
	// its pruning, which on a table of the same name would delete chunks
	// that straddle its compact revision) rather than touch chunks it
	// cannot read. The revision row is locked first, as every write does,
	// so that the migration waits for a step-1 writer instead of
	// deadlocking with it over the old table.
	`SELECT rev FROM {s}.meta WHERE id = 1 FOR UPDATE;
	DROP TABLE {s}.history;
	CREATE TABLE {s}.history_chunks (
		rev    bigint PRIMARY KEY,
		last   bigint NOT NULL,
		events bytea NOT NULL
	);
	UPDATE {s}.meta SET compact = rev;`,
}

// migrate creates or upgrades the schema.
func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('kvhost-schema:' || $1, 0))`, s.cfg.Schema); err != nil {
			return err
		}
		setup := `CREATE SCHEMA IF NOT EXISTS {s};
			CREATE TABLE IF NOT EXISTS {s}.meta (
				id int PRIMARY KEY CHECK (id = 1),
				rev bigint NOT NULL,
				compact bigint NOT NULL,
				schema_version int NOT NULL
			);
			INSERT INTO {s}.meta VALUES (1, 0, 0, 0) ON CONFLICT DO NOTHING`
		if _, err := tx.Exec(ctx, s.sql(setup)); err != nil {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, s.sql(`SELECT schema_version FROM {s}.meta`)).Scan(&version); err != nil {
			return err
		}
		if err := s.migrations().Apply(ctx, tx, version, "the database"); err != nil {
			return err
		}
		// ANALYZE gives the planner the one row of meta, which every read
		// joins: unanalyzed, it guessed 1570 rows and costed reads as such.
		if _, err := tx.Exec(ctx, s.sql(`UPDATE {s}.meta SET schema_version = $1`), len(schemaSteps)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.sql(`ANALYZE {s}.meta`))
		return err
	})
}

// migrations are schemaSteps as steps on the migrating transaction.
func (s *Store) migrations() sqlkv.Migrations[pgx.Tx] {
	m := make(sqlkv.Migrations[pgx.Tx], len(schemaSteps))
	for i, q := range schemaSteps {
		m[i] = func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, s.sql(q))
			return err
		}
	}
	return m
}

// sql puts the quoted schema name into a statement.
func (s *Store) sql(q string) string { return strings.ReplaceAll(q, "{s}", s.schema) }
