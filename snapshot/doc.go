// Package snapshot is kvhost's snapshot file format: a streamed image of a
// store at one revision, with each key's value, version and expiry, that
// `kvhost snapshot save` writes and `kvhost snapshot restore` reads. The
// byte layout is specified in docs/SNAPSHOT.md; this package is its one
// implementation.
//
// A file is a header (magic, format version, the store revision the image
// is at, when it was made, a free-text source), then one record per live
// key in ascending order of version (oldest change first, so a restore
// replays the keys in the order they were last changed), then a trailer
// with the number of records and a SHA-256 of every byte before it.
//
// Writer and Reader stream: neither holds more than one record. A Reader
// refuses a bad magic (ErrNotSnapshot), an unknown format version
// (ErrVersion), a file that ends early (ErrTruncated), a damaged or
// inconsistent record or trailer (ErrCorrupt) and a checksum mismatch
// (ErrChecksum); every error names what it found. Because the checksum can
// only be checked at the end, a caller that must not act on a damaged file
// reads it through once with Verify before acting on it.
//
// Expiries are absolute (Unix milliseconds on the clock of the server that
// kept the key): a key restored later gets only what was left of its TTL,
// and a key whose expiry has passed is not restored (see Record.TTL).
//
// Builder makes the image at one revision from list pages read at
// different revisions plus the watch events between them, in bounded
// memory: it sorts through temporary files when the image does not fit
// in its memory budget.
package snapshot
