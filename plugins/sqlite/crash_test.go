package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

const crashBatchOps = 500

// TestCrashKeepsAcknowledgedWrites runs the real plugin binary, streams
// puts and batches at it, and kills it with SIGKILL at a random moment,
// several times over the same file. After each kill, every write the
// plugin acknowledged must be there, and every batch must be whole or
// absent: a batch in flight at the kill may land or not, never in part;
// so must its history.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	bin := testbin.Plugin(t, "sqlite")
	path := filepath.Join(t.TempDir(), "crash.db")
	w := &crashWriter{acked: map[string]string{}}
	for round := range 4 {
		p, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{
			Path:     bin,
			Settings: map[string]string{"path": path},
			Logger:   hclog.NewNullLogger(),
		})
		if err != nil {
			t.Fatalf("round %d: start: %v", round, err)
		}
		pid := p.Pid()
		if pid <= 0 {
			p.Kill()
			t.Fatal("no plugin pid")
		}
		// Odd rounds kill while a batch is being applied (or just before
		// or after: the timing is the kernel's), even ones at any point.
		k := startKiller(pid, round%2 == 1)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		inFlight := w.writeUntilKilled(ctx, p, k, round)
		cancel()
		<-k.done
		p.Kill()
		t.Logf("round %d: killed after %d acknowledged writes, with %s in flight", round, k.count(), inFlight)

		checkAfterCrash(t, path, w.acked, w.ackedBatches, w.batchSeq)
	}
}

// killer SIGKILLs a plugin once the stream of writes is well under way,
// at a random instant so that some kills land inside a batch.
type killer struct {
	mu           sync.Mutex
	acked        int
	threshold    int
	batchStarted chan struct{}
	done         chan struct{}
}

func startKiller(pid int, inBatch bool) *killer {
	k := &killer{threshold: 300 + rand.IntN(700), batchStarted: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		if inBatch {
			<-k.batchStarted
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		} else {
			for k.count() < k.threshold {
				time.Sleep(200 * time.Microsecond)
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	return k
}

func (k *killer) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.acked
}

func (k *killer) ack() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.acked++
}

// batch tells a killer waiting for a batch that one is starting.
func (k *killer) batch() {
	if k.count() >= k.threshold {
		select {
		case k.batchStarted <- struct{}{}:
		default:
		}
	}
}

// crashWriter writes puts and batches and remembers which were
// acknowledged, across rounds.
type crashWriter struct {
	acked         map[string]string // key -> value of every acknowledged put
	ackedBatches  []int
	seq, batchSeq int
}

// writeUntilKilled writes until a write fails, and says what was in
// flight then.
func (w *crashWriter) writeUntilKilled(ctx context.Context, p *pluginapi.Plugin, k *killer, round int) string {
	for ctx.Err() == nil {
		w.seq++
		key, value := fmt.Sprintf("p/%07d", w.seq), fmt.Sprintf("value-%d-%d", round, w.seq)
		if w.seq%40 == 0 {
			w.batchSeq++
			ops := make([]kv.Op, crashBatchOps)
			for i := range ops {
				ops[i] = kv.PutOp(fmt.Sprintf("b/%06d/%04d", w.batchSeq, i), []byte(value), 0, kv.Condition{})
			}
			k.batch()
			if _, err := p.Batch(ctx, ops); err != nil {
				return fmt.Sprintf("batch %d", w.batchSeq)
			}
			w.ackedBatches = append(w.ackedBatches, w.batchSeq)
		} else {
			if _, err := p.Put(ctx, kv.PutRequest{Key: key, Value: []byte(value)}); err != nil {
				return "put " + key
			}
			w.acked[key] = value
		}
		k.ack()
	}
	return "nothing"
}

// checkHistory checks that history holds one row per revision, from the
// oldest kept to the store revision: no write committed without its
// history row, and no history row without its write.
func checkHistory(t *testing.T, s *sqlite.Store) {
	t.Helper()
	ctx := t.Context()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := st.OldestRevision
	for next <= st.Revision {
		evs, through, err := s.ReadHistory(ctx, "", next, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			t.Fatalf("history has no event from revision %d, store at %d", next, st.Revision)
		}
		for _, ev := range evs {
			if ev.Revision != next {
				t.Fatalf("history has revision %d where %d should be", ev.Revision, next)
			}
			next++
		}
		// Every revision has its event, so a read covers exactly the
		// revisions of its events.
		if through != next-1 {
			t.Fatalf("a history read says it covered revision %d, its events end at %d", through, next-1)
		}
	}
}

// checkAfterCrash reopens the file with the library and checks it.
func checkAfterCrash(t *testing.T, path string, acked map[string]string, ackedBatches []int, lastBatch int) {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.New(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		n := min(len(keys), kv.MaxGetMany)
		got, err := s.GetMany(ctx, keys[:n])
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range got.Entries {
			if e == nil {
				t.Fatalf("acknowledged put %q is missing after the kill", keys[i])
			}
			if string(e.Value) != acked[keys[i]] {
				t.Fatalf("key %q = %q, acknowledged %q", keys[i], e.Value, acked[keys[i]])
			}
		}
		keys = keys[n:]
	}
	isAcked := map[int]bool{}
	for _, b := range ackedBatches {
		isAcked[b] = true
	}
	for b := 1; b <= lastBatch; b++ {
		c, err := s.Count(ctx, fmt.Sprintf("b/%06d/", b))
		if err != nil {
			t.Fatal(err)
		}
		n := c.Count
		switch {
		case n != 0 && n != crashBatchOps:
			t.Fatalf("batch %d is half applied: %d of %d ops", b, n, crashBatchOps)
		case isAcked[b] && n == 0:
			t.Fatalf("acknowledged batch %d is missing", b)
		}
	}
	checkHistory(t, s)
	// And the file itself is sound.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity check: %q %v", res, err)
	}
}
