// Package sqlkv is what the SQL backends (plugins/sqlite, plugins/postgres)
// have in common: the contract's write semantics over a dialect's few
// statements, and the bookkeeping of reads, history and schema versions.
//
// A backend supplies the SQL, as kine's drivers do over its generic layer:
// a Tx runs the handful of statements that differ per dialect (upsert,
// conditional insert and update, delete, TTL refresh, range and expiry
// deletes) inside the backend's own write transaction. Writer turns them
// into the contract's operations: conditions and the conflict answer,
// counters, batches with runs of unconditional puts in one statement,
// delete-prefix and expiry cleanup with one revision and one event per
// key in key order, and error messages that name the backend, the
// operation and the key. Txn is one write transaction's revisions and
// events, which the backend records in its history and publishes when it
// commits.
//
// Reads stay in the backends, whose SQL differs most; Page, InRequestOrder,
// Retention and HistoryPage are the rules they share (page limits, get-many
// order, which revisions a watch may start at, how far a history page
// reaches), and Migrations the schema versioning.
package sqlkv
