package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/config"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// migrateBatchBytes bounds one batch's keys and values: the plugin
// connection takes far more, but a smaller transaction is kinder to the
// target.
const migrateBatchBytes = 4 << 20

// migrateFlags are the flags of kvhost migrate.
type migrateFlags struct {
	from, to  string
	state     string
	force     bool
	batchSize int
}

func migrateCommand() *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate --from CONFIG --to CONFIG",
		Short: "Copy every live key from one backend to another",
		Long: `Copy every live key from one backend to another.

CONFIG is a kvhost server configuration file (what kvhost serve reads);
migrate starts the backend plugin each one names, with its settings, and
copies at the backend level: every tenant's keys, as stored (with their
t/TENANT/ prefixes), in key order, in batches, each key with what is left
of its TTL (keys that expire before they are copied are skipped). Stop the
hosts that write to the source first: migrate copies what it reads, and
the check at the end fails if the source changed meanwhile.

It refuses a target that holds keys unless --force (keys of the same name
are overwritten, others stay and the check reports them). After each batch
it records the last key copied in a state file (--state; default
TARGET-CONFIG.migrate.json beside the target's configuration): a migrate
that was interrupted or killed continues from there when run again with
the same configurations. At the end it lists both sides in key order and
compares their counts and a SHA-256 of their keys and values (keys that
expire within a minute are left out of both); the state file is removed
once they match.

Progress is a bar on a terminal, one line per percent otherwise.`,
		Example: `  kvhost migrate --from sqlite.yaml --to postgres.yaml`,
		Args:    nargs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.from == "" || f.to == "" {
				return usageError(cmd, "--from and --to are both required")
			}
			if f.batchSize < 1 || f.batchSize > kv.MaxBatchOps {
				return usageError(cmd, "--batch-size %d: want 1 to %d", f.batchSize, kv.MaxBatchOps)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runMigrate(ctx, cmd.ErrOrStderr(), f)
		},
	}
	cmd.Flags().StringVar(&f.from, "from", "", "configuration `file` of the source")
	cmd.Flags().StringVar(&f.to, "to", "", "configuration `file` of the target")
	cmd.Flags().StringVar(&f.state, "state", "", "checkpoint `file` (default: beside the target's configuration)")
	cmd.Flags().BoolVar(&f.force, "force", false, "copy into a target that already holds keys")
	cmd.Flags().IntVar(&f.batchSize, "batch-size", kv.MaxBatchOps, "keys per batch")
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError(cmd, "%v", err) })
	return cmd
}

// migrateState is the checkpoint: which migration it is and how far it
// got. Backends are identified by a hash of their configuration (which
// may hold secrets), not the configuration itself.
type migrateState struct {
	From     string    `json:"from"`
	FromID   string    `json:"from_id"`
	To       string    `json:"to"`
	ToID     string    `json:"to_id"`
	LastKey  string    `json:"last_key"`
	Copied   int64     `json:"copied"`
	Expired  int64     `json:"expired_skipped"`
	Total    int64     `json:"total"`
	Done     bool      `json:"copy_done"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	path     string
	resuming bool
}

// endpoint is one side of a migration.
type endpoint struct {
	path   string
	id     string
	plugin host.PluginConfig
	b      *pluginapi.Plugin
}

func runMigrate(ctx context.Context, stderr io.Writer, f migrateFlags) error {
	from, err := loadEndpoint(f.from)
	if err != nil {
		return err
	}
	to, err := loadEndpoint(f.to)
	if err != nil {
		return err
	}
	if from.id == to.id {
		return fmt.Errorf("migrate: %s and %s name the same backend with the same settings", f.from, f.to)
	}
	if f.state == "" {
		f.state = filepath.Join(filepath.Dir(f.to), filepath.Base(f.to)+".migrate.json")
	}
	st, err := loadState(f.state, from, to)
	if err != nil {
		return err
	}
	for _, e := range []*endpoint{&from, &to} {
		if err := e.start(ctx, stderr); err != nil {
			return err
		}
		defer e.b.Kill()
	}
	if err := checkTarget(ctx, to, st, f.force); err != nil {
		return err
	}
	if !st.Done {
		if err := copyAll(ctx, stderr, from, to, st, f.batchSize); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "migrate: copied %d keys (%d expired before their turn, skipped); verifying both sides\n", st.Copied, st.Expired)
	res, err := verifyMigration(ctx, from.b, to.b)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "migrate: verified %s: %d keys, sha256 %x (%d keys expiring within %v left out of the check)\n",
		to.path, res.count, res.sum, res.leftOut, verifyMargin)
	if err := os.Remove(st.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrate: done, but the state file stays: %w", err)
	}
	return nil
}

// loadEndpoint reads a configuration and identifies its backend.
func loadEndpoint(path string) (endpoint, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return endpoint{}, err
	}
	pc, err := backendPlugin(cfg)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return endpoint{}, err
	}
	ident, _ := json.Marshal(struct { // map keys marshal sorted
		Plugin, Path string
		Settings     map[string]string
	}{cfg.Backend.Plugin, cfg.Backend.Path, pc.Settings})
	return endpoint{path: abs, id: fmt.Sprintf("%x", sha256.Sum256(ident)), plugin: pc}, nil
}

// start starts the endpoint's plugin as serve would, but unsupervised:
// a migrate whose plugin dies stops, and continues from its checkpoint
// when run again.
func (e *endpoint) start(ctx context.Context, stderr io.Writer) error {
	p, err := pluginapi.Start(ctx, pluginapi.StartConfig{
		Path: e.plugin.Path, SHA256: e.plugin.SHA256, Settings: e.plugin.Settings, StartTimeout: e.plugin.StartTimeout,
		DisableSharedPages: e.plugin.DisableSharedPages,
		Logger:             hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: stderr}),
	})
	if err != nil {
		return fmt.Errorf("migrate: %s: %w", e.path, err)
	}
	e.b = p
	return nil
}

// loadState reads the checkpoint of this migration, or starts one. A
// state file of another migration is refused.
func loadState(path string, from, to endpoint) (*migrateState, error) {
	st := &migrateState{From: from.path, FromID: from.id, To: to.path, ToID: to.id, Started: time.Now(), path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: state file: %w", err)
	}
	var old migrateState
	if err := json.Unmarshal(data, &old); err != nil {
		return nil, fmt.Errorf("migrate: state file %s is damaged (%w); remove it to start over", path, err)
	}
	if old.FromID != from.id || old.ToID != to.id {
		return nil, fmt.Errorf("migrate: state file %s belongs to a migration from %s to %s (or their backend settings changed since); remove it, or give another --state", path, old.From, old.To)
	}
	old.path, old.resuming = path, true
	return &old, nil
}

// save writes the checkpoint: to a temporary file, synced, then renamed,
// so a kill leaves the old checkpoint or the new one.
func (st *migrateState) save() error {
	st.Updated = time.Now()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("migrate: state file: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, st.path)
	}
	if err != nil {
		return fmt.Errorf("migrate: state file: %w", err)
	}
	return nil
}

// checkTarget refuses a target that holds keys, unless told to or
// resuming this migration's own checkpoint.
func checkTarget(ctx context.Context, to endpoint, st *migrateState, force bool) error {
	if st.resuming {
		return nil
	}
	n, err := to.b.Count(ctx, "")
	if err != nil {
		return fmt.Errorf("migrate: counting the target's keys: %w", err)
	}
	if n.Count > 0 && !force {
		return fmt.Errorf("%w: %s holds %d keys; --force copies over them (keys of the same name are overwritten, others stay)", errNotEmpty, to.path, n.Count)
	}
	return nil
}

// copyAll copies the source's pages after the checkpoint, one batch per
// page, saving the checkpoint after each.
func copyAll(ctx context.Context, stderr io.Writer, from, to endpoint, st *migrateState, batchSize int) error {
	if !st.resuming {
		n, err := from.b.Count(ctx, "")
		if err != nil {
			return fmt.Errorf("migrate: counting the source's keys: %w", err)
		}
		st.Total = n.Count
		if err := st.save(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stderr, "migrate: resuming after key %q (%d keys copied)\n", st.LastKey, st.Copied)
	}
	prog := newProgress(stderr, st.Total, st.Copied+st.Expired)
	defer prog.finish()
	var b batcher
	b.init(batchSize, migrateBatchBytes, func(ctx context.Context, ops []kv.Op) error {
		_, err := to.b.Batch(ctx, ops)
		return err
	})
	for {
		page, err := from.b.List(ctx, kv.ListRequest{StartAfter: st.LastKey, Limit: batchSize})
		if err != nil {
			return fmt.Errorf("migrate: reading the source after %q: %w", st.LastKey, err)
		}
		now := time.Now()
		for _, e := range page.Entries {
			ttl, ok := remaining(e.ExpiresAt, now)
			if !ok {
				st.Expired++
				continue
			}
			if err := b.add(ctx, kv.PutOp(e.Key, e.Value, ttl, kv.Condition{})); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
		if err := b.flush(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(page.Entries) > 0 {
			st.LastKey = page.Entries[len(page.Entries)-1].Key
		}
		st.Copied = st.Copied + b.done
		b.done = 0
		st.Done = !page.More || len(page.Entries) == 0
		if err := st.save(); err != nil {
			return err
		}
		prog.set(st.Copied+st.Expired, st.LastKey)
		if st.Done {
			return nil
		}
	}
}

// remaining is what is left of a TTL at now: 0 and true for no expiry,
// false when it has passed.
func remaining(expiresAt, now time.Time) (time.Duration, bool) {
	if expiresAt.IsZero() {
		return 0, true
	}
	left := kv.UnixMillis(expiresAt) - kv.UnixMillis(now)
	return kv.Millis(left), left > 0
}

// progress shows how far the copy is: a bar on a terminal, a line per
// percent (or per minute) otherwise.
type progress struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	total    int64 // at least 1, for the bar
	count    int64 // the source's count when the copy began
	lastPct  int64
	lastLine time.Time
}

func newProgress(w io.Writer, total, done int64) *progress {
	p := &progress{w: w, total: max(total, 1), count: total, lastPct: -1}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions64(p.total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("migrate"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("keys"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
		_ = p.bar.Set64(min(done, p.total))
	}
	return p
}

func (p *progress) set(done int64, lastKey string) {
	if p.bar != nil {
		if done > p.total { // keys written since the count
			p.bar.ChangeMax64(done)
		}
		_ = p.bar.Set64(done)
		return
	}
	pct := int64(100)
	if p.count > 0 {
		pct = min(100*done/p.count, 100)
	}
	if pct == p.lastPct && time.Since(p.lastLine) < time.Minute {
		return
	}
	p.lastPct, p.lastLine = pct, time.Now()
	fmt.Fprintf(p.w, "migrate: %d/%d keys (%d%%), last key %q\n", done, p.count, pct, lastKey)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// verifyMargin: keys that expire this soon are left out of the check on
// both sides, since either side may drop them while it runs.
const verifyMargin = time.Minute

// verifyResult is what the check found equal on both sides.
type verifyResult struct {
	count   int64
	sum     []byte
	leftOut int64
}

// verifyMigration lists both sides in key order, side by side, and
// compares them: each side's count and SHA-256 of its keys and values
// (each key and value length-prefixed), and the first key that differs.
// A key with an expiry on one side only is a difference too.
func verifyMigration(ctx context.Context, from, to kv.Backend) (verifyResult, error) {
	src, dst := &pager{b: from}, &pager{b: to}
	hs, ht := sha256.New(), sha256.New()
	var ns, nt, leftOut int64
	var firstDiff string
	for {
		a, okA, err := src.peek(ctx)
		if err != nil {
			return verifyResult{}, fmt.Errorf("migrate: verifying the source: %w", err)
		}
		b, okB, err := dst.peek(ctx)
		if err != nil {
			return verifyResult{}, fmt.Errorf("migrate: verifying the target: %w", err)
		}
		if !okA && !okB {
			break
		}
		soon := time.Now().Add(verifyMargin)
		switch {
		case okA && (!okB || a.Key < b.Key):
			src.pop()
			if expiresBefore(a, soon) {
				leftOut++
				continue
			}
			ns++
			hashEntry(hs, a)
			firstDiff = cmp.Or(firstDiff, fmt.Sprintf("key %q is missing from the target", a.Key))
		case okB && (!okA || b.Key < a.Key):
			dst.pop()
			if expiresBefore(b, soon) {
				leftOut++
				continue
			}
			nt++
			hashEntry(ht, b)
			firstDiff = cmp.Or(firstDiff, fmt.Sprintf("key %q is in the target only", b.Key))
		default:
			src.pop()
			dst.pop()
			if expiresBefore(a, soon) || expiresBefore(b, soon) {
				leftOut++
				continue
			}
			ns, nt = ns+1, nt+1
			hashEntry(hs, a)
			hashEntry(ht, b)
			switch {
			case !bytes.Equal(a.Value, b.Value):
				firstDiff = cmp.Or(firstDiff, fmt.Sprintf("key %q has another value in the target", a.Key))
			case a.ExpiresAt.IsZero() != b.ExpiresAt.IsZero():
				firstDiff = cmp.Or(firstDiff, fmt.Sprintf("key %q expires on one side only", a.Key))
			}
		}
	}
	sumS, sumT := hs.Sum(nil), ht.Sum(nil)
	if ns != nt || !bytes.Equal(sumS, sumT) || firstDiff != "" {
		return verifyResult{}, fmt.Errorf("%w: the source has %d keys (sha256 %x), the target %d (sha256 %x); first difference: %s",
			errVerify, ns, sumS, nt, sumT, firstDiff)
	}
	return verifyResult{count: ns, sum: sumS, leftOut: leftOut}, nil
}

func expiresBefore(e kv.Entry, t time.Time) bool {
	return !e.ExpiresAt.IsZero() && e.ExpiresAt.Before(t)
}

func hashEntry(h hash.Hash, e kv.Entry) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(e.Key)))])
	h.Write([]byte(e.Key))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(e.Value)))])
	h.Write(e.Value)
}

// pager walks a backend's keys in order, a page at a time.
type pager struct {
	b     kv.Backend
	after string
	page  []kv.Entry
	done  bool
}

func (p *pager) peek(ctx context.Context) (kv.Entry, bool, error) {
	for len(p.page) == 0 {
		if p.done {
			return kv.Entry{}, false, nil
		}
		res, err := p.b.List(ctx, kv.ListRequest{StartAfter: p.after, Limit: kv.MaxListLimit})
		if err != nil {
			return kv.Entry{}, false, err
		}
		p.page, p.done = res.Entries, !res.More || len(res.Entries) == 0
		if len(res.Entries) > 0 {
			p.after = res.Entries[len(res.Entries)-1].Key
		}
	}
	return p.page[0], true, nil
}

func (p *pager) pop() { p.page = p.page[1:] }
