package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/snapshot"
)

// restoreBatchBytes bounds the keys and values of one batch that restore
// sends: well under a server's default request limit (1.5 MiB). A larger
// entry goes alone.
const restoreBatchBytes = 1 << 20

// snapshotRestoreCommand is kvhost snapshot restore.
func snapshotRestoreCommand() *cobra.Command {
	var (
		force     bool
		batchSize int
	)
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore the keys of a snapshot FILE into your tenant",
		Long: `Restore the keys of a snapshot FILE into your tenant.

The whole file is read and checked first (format, version, every record,
count and checksum): a damaged or truncated file is refused with what is
wrong, and nothing is written. Restore then refuses a store that already
holds keys unless --force (keys of the same name are overwritten, others
stay). Keys are written in the order of their versions (the oldest change
first) in batches; each gets what is left of its TTL, reckoned from the
absolute expiry in the file on this machine's clock, and a key that has
expired since the save is skipped. The target gives every key a new
version: versions cannot be carried over, their order is. At the end the
store's key count is checked against what was written.`,
		Args: nargs(1, 1),
	}
	k := newConn(cmd, true)
	cmd.Flags().BoolVar(&force, "force", false, "restore into a store that already holds keys")
	cmd.Flags().IntVar(&batchSize, "batch-size", kv.MaxBatchOps, "keys per batch (at most the server's limits.max_batch_ops)")
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		if batchSize < 1 || batchSize > kv.MaxBatchOps {
			return usageError(cmd, "--batch-size %d: want 1 to %d", batchSize, kv.MaxBatchOps)
		}
		return k.restoreSnapshot(cmd, args[0], force, batchSize)
	})
	return cmd
}

// restoreSummary is restore's report.
type restoreSummary struct {
	File     string `json:"file"`
	Revision int64  `json:"snapshot_revision"`
	Records  uint64 `json:"records"`
	Restored int64  `json:"restored"`
	Expired  int64  `json:"expired_skipped"`
	Keys     int64  `json:"keys_now"`
}

func (k *conn) restoreSnapshot(cmd *cobra.Command, path string, force bool, batchSize int) error {
	f, err := openSnapshot(path, cmd.InOrStdin())
	if err != nil {
		return err
	}
	defer f.Close()
	h, records, _, err := snapshot.Verify(f)
	if err != nil {
		return fmt.Errorf("%s is refused, nothing was written: %w", path, err)
	}
	ctx, cancel := k.ctx(cmd)
	before, err := k.c.Count(ctx, "")
	cancel()
	if err != nil {
		return err
	}
	if before > 0 && !force {
		return fmt.Errorf("%w: the store already holds %d keys and restore writes into an empty one; --force writes over it (keys of the same name are overwritten, others stay)", errNotEmpty, before)
	}
	s := restoreSummary{File: path, Revision: h.Revision, Records: records}
	if s.Restored, s.Expired, err = k.writeSnapshot(cmd, f, batchSize); err != nil {
		return err
	}
	if s.Keys, err = k.checkRestored(cmd, f, before, s); err != nil {
		return err
	}
	if k.json {
		return k.emit(s)
	}
	return k.printf("restored %d of %d keys from %s (snapshot revision %d; %d expired since, skipped); the store holds %d keys\n",
		s.Restored, s.Records, path, s.Revision, s.Expired, s.Keys)
}

// openSnapshot opens a snapshot to be read twice: a file, or standard
// input copied to an unnamed temporary file.
func openSnapshot(path string, stdin io.Reader) (*os.File, error) {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("snapshot restore: %w", err)
		}
		return f, nil
	}
	f, err := os.CreateTemp("", "kvhost-restore-*")
	if err != nil {
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	_ = os.Remove(f.Name())
	if _, err := io.Copy(f, stdin); err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot restore: reading standard input: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	return f, nil
}

// writeSnapshot writes the records of f in batches and returns how many
// it wrote and how many it skipped as expired.
func (k *conn) writeSnapshot(cmd *cobra.Command, f *os.File, batchSize int) (written, expired int64, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("snapshot restore: %w", err)
	}
	r, err := snapshot.NewReader(f)
	if err != nil {
		return 0, 0, err
	}
	send := func(ctx context.Context, ops []kv.Op) error {
		cctx, cancel := k.ctx(cmd)
		defer cancel()
		_, err := k.c.Batch(cctx, ops)
		return err
	}
	var b batcher
	b.init(batchSize, restoreBatchBytes, send)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return written, expired, fmt.Errorf("the file changed since it was checked: %w", err)
		}
		ttl, ok := rec.TTL(time.Now())
		if !ok {
			expired++
			continue
		}
		if err := b.add(cmd.Context(), kv.PutOp(rec.Key, rec.Value, ttl, kv.Condition{})); err != nil {
			return b.done, expired, err
		}
	}
	err = b.flush(cmd.Context())
	return b.done, expired, err
}

// checkRestored counts the store's keys and checks them against what was
// written: every key, less those whose expiry has come since (counted
// from the file). A store that held keys before can only be checked for
// a lower bound.
func (k *conn) checkRestored(cmd *cobra.Command, f *os.File, before int64, s restoreSummary) (int64, error) {
	ctx, cancel := k.ctx(cmd)
	n, err := k.c.Count(ctx, "")
	cancel()
	if err != nil {
		return 0, err
	}
	// Keys whose expiry is up to a second past the count may be gone:
	// the server reckons on its own clock.
	gone, err := expiringBy(f, time.Now().Add(time.Second))
	if err != nil {
		return n, err
	}
	low, high := s.Restored-(gone-s.Expired), s.Restored+before
	if n < low || n > high {
		return n, fmt.Errorf("%w: restore wrote %d keys (%d of them may have expired since), but the store holds %d", errVerify, s.Restored, gone-s.Expired, n)
	}
	return n, nil
}

// expiringBy counts the records of f whose expiry is at or before t.
func expiringBy(f *os.File, t time.Time) (int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("snapshot restore: %w", err)
	}
	r, err := snapshot.NewReader(f)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if !rec.ExpiresAt.IsZero() && !rec.ExpiresAt.After(t) {
			n++
		}
	}
}

// batcher gathers puts into batches of at most size ops and maxBytes of
// keys and values and sends them; a batch the server finds too large is
// split in two and sent again.
type batcher struct {
	size     int
	maxBytes int
	send     func(context.Context, []kv.Op) error
	ops      []kv.Op
	bytes    int
	done     int64
}

func (b *batcher) init(size, maxBytes int, send func(context.Context, []kv.Op) error) {
	b.size, b.maxBytes, b.send, b.ops = size, maxBytes, send, make([]kv.Op, 0, size)
}

func (b *batcher) add(ctx context.Context, op kv.Op) error {
	n := len(op.Key) + len(op.Value)
	if len(b.ops) > 0 && b.bytes+n > b.maxBytes {
		if err := b.flush(ctx); err != nil {
			return err
		}
	}
	b.ops = append(b.ops, op)
	b.bytes += n
	if len(b.ops) >= b.size {
		return b.flush(ctx)
	}
	return nil
}

func (b *batcher) flush(ctx context.Context) error {
	if len(b.ops) == 0 {
		return nil
	}
	if err := b.split(ctx, b.ops); err != nil {
		return err
	}
	b.done += int64(len(b.ops))
	clear(b.ops)
	b.ops, b.bytes = b.ops[:0], 0
	return nil
}

func (b *batcher) split(ctx context.Context, ops []kv.Op) error {
	err := b.send(ctx, ops)
	if errors.Is(err, kv.ErrTooLarge) && len(ops) > 1 {
		if err := b.split(ctx, ops[:len(ops)/2]); err != nil {
			return err
		}
		return b.split(ctx, ops[len(ops)/2:])
	}
	if err != nil {
		return fmt.Errorf("writing %d keys from %q: %w", len(ops), ops[0].Key, err)
	}
	return nil
}
