package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/snapshot"
)

// errVerify is wrapped by the error of a restore or migrate whose
// check at the end found the target not as it should be.
var errVerify = errors.New("verification failed")

// errNotEmpty is wrapped by the refusal to write into a store that holds
// keys without --force.
var errNotEmpty = errors.New("the target is not empty")

func snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save your keys to a snapshot file, or restore them from one",
		Long: `
A snapshot is the image of your tenant's keys at one store revision: every
key with its value and its expiry, in the order of their versions, in the
versioned, checksummed format of docs/SNAPSHOT.md. FILE - is standard
output (save) or input (restore).`,
		Example: `  kvhost snapshot save backup.kvsnap
  kvhost snapshot restore backup.kvsnap --addr new-host:7070
  kvhost snapshot save - --addr a:7070 | kvhost snapshot restore - --addr b:7070`,
	}
	cmd.AddCommand(snapshotSaveCommand(), snapshotRestoreCommand())
	for _, sub := range cmd.Commands() {
		sub.Long = strings.TrimRight(sub.Long, "\n") + "\n" + clientHelpFooter
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError(cmd, "unknown command %q: want save or restore", args[0])
		}
		return cmd.Help()
	}
	return cmd
}

func snapshotSaveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save every key of your tenant, at one revision, to FILE",
		Long: `Save every key of your tenant, at one revision, to FILE.

The image is consistent even while others write: save lists every page,
then applies the changes made from the first page's revision up to the
last one's, recorded by a watch opened before the first page (if that
watch falls behind, the rest is read from the backend's watch history,
which must then still reach back that far), and records that revision in
the file's header. Keys are
written in the order of their versions, each with its absolute expiry;
keys already expired are left out. The file is written beside FILE and
renamed into place once complete, so FILE is never half-written; entries
beyond 64 MiB are sorted through temporary files in FILE's directory.
--timeout bounds each call.`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		return k.saveSnapshot(cmd, args[0])
	})
	return cmd
}

// saveSummary is save's report.
type saveSummary struct {
	File     string `json:"file"`
	Keys     uint64 `json:"keys"`
	Revision int64  `json:"revision"`
	// ListedFrom is the first page's revision: the changes from it to
	// Revision were applied to the pages.
	ListedFrom int64  `json:"listed_from_revision"`
	Expired    int64  `json:"expired_left_out"`
	SHA256     string `json:"sha256"`
}

func (k *conn) saveSnapshot(cmd *cobra.Command, path string) error {
	out, dir, commit, err := createAtomic(path, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer commit(false)
	b := snapshot.NewBuilder(dir, 0)
	defer b.Close()
	// The changes made while the pages are listed come from a watch
	// opened before the first page, so that the image needs no history
	// unless that watch falls behind.
	wctx, stop := context.WithCancel(cmd.Context())
	defer stop()
	ws, err := k.c.Watch(wctx, "", client.WithTTLEvents(), client.WithProgressInterval(200*time.Millisecond))
	if err != nil {
		return err
	}
	rec := recordChanges(ws)
	first, last, err := k.listAll(cmd, b)
	if err != nil {
		return err
	}
	if last > first {
		if err := k.changesWhileListed(cmd.Context(), rec, b, first+1, last); err != nil {
			return err
		}
	}
	stop()
	w, err := snapshot.NewWriter(out, snapshot.Header{Revision: last, Created: time.Now(), Source: "kvhost snapshot save from " + k.addr})
	if err != nil {
		return err
	}
	expired, err := b.Write(w, time.Now())
	if err != nil {
		return err
	}
	sum, err := w.Close()
	if err != nil {
		return err
	}
	if err := commit(true); err != nil {
		return err
	}
	s := saveSummary{File: path, Keys: w.Count(), Revision: last, ListedFrom: first, Expired: expired, SHA256: fmt.Sprintf("%x", sum)}
	if path == "-" { // the data went to stdout; the report goes beside it
		k.out = cmd.ErrOrStderr()
	}
	if k.json {
		return k.emit(s)
	}
	return k.printf("saved %d keys at revision %d to %s (sha256 %s; %d expired keys left out)\n", s.Keys, s.Revision, path, s.SHA256, s.Expired)
}

// createAtomic opens where a snapshot goes: stdout for "-", else a
// temporary file beside path that commit(true) syncs and renames onto it
// (commit(false) removes it). dir is where temporary files may go.
func createAtomic(path string, stdout io.Writer) (io.Writer, string, func(bool) error, error) {
	if path == "-" {
		return stdout, "", func(bool) error { return nil }, nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, "", nil, fmt.Errorf("snapshot save: %w", err)
	}
	done := false
	commit := func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			f.Close()
			return os.Remove(f.Name())
		}
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			_ = os.Remove(f.Name())
			return fmt.Errorf("snapshot save: %w", err)
		}
		return nil
	}
	return f, dir, commit, nil
}

// listAll adds every page of the tenant's keys to b and returns the
// revisions of the first and the last page.
func (k *conn) listAll(cmd *cobra.Command, b *snapshot.Builder) (first, last int64, err error) {
	after := ""
	for i := 0; ; i++ {
		ctx, cancel := k.ctx(cmd)
		page, err := k.c.List(ctx, "", client.StartAfter(after), client.Limit(kv.MaxListLimit))
		cancel()
		if err != nil {
			return 0, 0, err
		}
		if i == 0 {
			first = page.Revision
		}
		last = max(last, page.Revision)
		if err := b.AddPage(page.Entries, page.Revision); err != nil {
			return 0, 0, err
		}
		if !page.More || len(page.Entries) == 0 {
			return first, last, nil
		}
		after = page.Entries[len(page.Entries)-1].Key
	}
}

// recorderBytes bounds the keys and values a recorder holds in memory
// (as snapshot.Builder bounds its own): past it, the recorder stops, and
// save reads the rest of the changes from the watch history.
const recorderBytes = 64 << 20

// errRecorderFull ends a recorder that reached recorderBytes.
var errRecorderFull = errors.New("the changes made while listing outgrew the memory kept for them")

// recorder keeps what a live watch delivers while the pages are listed.
type recorder struct {
	mu     sync.Mutex
	events []kv.Event
	size   int   // key and value bytes of events
	seen   int64 // the last revision the watch vouched for (event or progress)
	err    error // how the watch ended, once it has
	moved  chan struct{}
}

// recordChanges records ws's events until it ends.
func recordChanges(ws kv.WatchStream) *recorder {
	r := &recorder{moved: make(chan struct{}, 1)}
	go func() {
		defer ws.Close()
		for {
			ev, err := ws.Recv()
			r.mu.Lock()
			switch size := len(ev.Key) + len(ev.Value); {
			case err != nil:
				r.err = err
			case r.size+size > recorderBytes:
				err, r.err = errRecorderFull, errRecorderFull
			default:
				if ev.Type != kv.EventProgress {
					r.events = append(r.events, ev)
					r.size += size
				}
				r.seen = max(r.seen, ev.Revision)
			}
			r.mu.Unlock()
			select {
			case r.moved <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// upTo waits until the watch has vouched for revision to or ended, and
// returns the events it recorded and the revision it reached.
func (r *recorder) upTo(ctx context.Context, to int64) ([]kv.Event, int64, error) {
	for {
		r.mu.Lock()
		evs, seen, err := r.events, r.seen, r.err
		r.mu.Unlock()
		if seen >= to || err != nil {
			return evs, seen, err
		}
		select {
		case <-r.moved:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// changesWhileListed adds to b every change with a revision from..to: what
// the live watch recorded, and, if that watch ended before reaching to
// (it fell behind, or the connection was lost), the rest from the watch
// history.
func (k *conn) changesWhileListed(ctx context.Context, rec *recorder, b *snapshot.Builder, from, to int64) error {
	evs, seen, _ := rec.upTo(ctx, to)
	if err := ctx.Err(); err != nil {
		return err
	}
	// A watch that ended short of to (it fell behind, lost its
	// connection, or outgrew recorderBytes) is made up for from history
	// below.
	for _, ev := range evs {
		if ev.Revision < from || ev.Revision > to {
			continue
		}
		if err := b.AddEvent(ev); err != nil {
			return err
		}
	}
	if seen >= to {
		return nil
	}
	return k.changesBetween(ctx, b, max(from, seen+1), to)
}

// changesBetween adds to b every change with a revision from..to, read
// from the watch history; a watch that overflows is resumed.
func (k *conn) changesBetween(ctx context.Context, b *snapshot.Builder, from, to int64) error {
	for from <= to {
		ws, err := k.c.Watch(ctx, "", client.FromRevision(from), client.WithTTLEvents(), client.WithProgressInterval(200*time.Millisecond))
		if errors.Is(err, client.ErrCompacted) {
			return fmt.Errorf("the store changed while it was listed and its history no longer reaches revision %d, so no consistent image can be made; save again, or keep more history (the backend's history setting): %w", from, err)
		}
		if err != nil {
			return err
		}
		from, err = drainChanges(ws, b, from, to)
		ws.Close()
		if err != nil && !errors.Is(err, client.ErrWatchOverflow) {
			return err
		}
	}
	return nil
}

// drainChanges reads ws until it has delivered every change up to to; it
// returns the next revision it needs.
func drainChanges(ws kv.WatchStream, b *snapshot.Builder, from, to int64) (int64, error) {
	for {
		ev, err := ws.Recv()
		if err != nil {
			return from, err
		}
		if ev.Revision > to || (ev.Type == kv.EventProgress && ev.Revision >= to) {
			return to + 1, nil
		}
		if ev.Type == kv.EventProgress {
			continue
		}
		if err := b.AddEvent(ev); err != nil {
			return from, err
		}
		from = ev.Revision + 1
		if ev.Revision == to {
			return from, nil
		}
	}
}
