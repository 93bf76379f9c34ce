package host_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

// A register per key, checked by porcupine. A put that failed may or may
// not have taken effect, but if it did, it did before it returned (the
// plugin died before answering): the model's state is the set of values
// the register may hold, and a read narrows it to what it saw. This keeps
// every operation's interval finite, which keeps the check fast.
type regInput struct {
	put   bool
	maybe bool // a put that failed
	key   string
	value string
}

type regOutput struct {
	found bool
	value string
}

const absent = "\x00"

func (o regOutput) String() string {
	if !o.found {
		return absent
	}
	return o.value
}

var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(regInput).key
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(by))
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	// The state: the values the register may hold, sorted, joined by \x01.
	Init: func() any { return absent },
	Step: func(state, input, output any) (bool, any) {
		in, may := input.(regInput), strings.Split(state.(string), "\x01")
		switch {
		case in.put && !in.maybe:
			return true, in.value
		case in.put:
			if !slices.Contains(may, in.value) {
				may = append(may, in.value)
				slices.Sort(may)
			}
			return true, strings.Join(may, "\x01")
		}
		saw := output.(regOutput).String()
		return slices.Contains(may, saw), saw
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.put {
			return fmt.Sprintf("put(%s, %s) maybe=%v", in.key, in.value, in.maybe)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, output.(regOutput).String())
	},
}

// The host's read cache over SQLite is linearizable: concurrent writers
// and readers through one store, with the cache's change stream cut and
// the plugin SIGKILLed during the run, make a history that porcupine
// finds linearizable — and the readers were served from the cache.
func TestCacheLinearizable(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := openPluginStore(t, func(c *host.Config) {
		c.Plugin = host.PluginConfig{Path: testbin.Plugin(t, "sqlite"), Settings: map[string]string{"path": filepath.Join(t.TempDir(), "kv.db")}}
		c.Metrics = host.NewMetrics(reg)
		c.RestartBackoffMin = 20 * time.Millisecond
	})
	ctx := t.Context()
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		ops     atomic.Int64
		wg      sync.WaitGroup
	)
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
		ops.Add(1)
	}
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	// A failed call leaves the store down for a while: wait for it to be
	// back rather than pile up calls that can only fail (each failed put
	// is an operation of unknown outcome, which the checker pays for).
	ready := func() { waitFor(t, "the store to be ready again", st.Ready) }
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < 2000; i++ {
				in := regInput{put: true, key: keys[rng.IntN(len(keys))], value: fmt.Sprintf("w%d-%d", w, i)}
				call := now()
				_, err := st.Put(ctx, kv.PutRequest{Key: in.key, Value: []byte(in.value)})
				ret := now()
				if err != nil {
					if !errors.Is(err, kv.ErrUnavailable) {
						t.Errorf("put: %v", err)
						return
					}
					in.maybe = true
				}
				record(porcupine.Operation{ClientId: w, Input: in, Call: call, Output: regOutput{}, Return: ret})
				if err != nil {
					ready()
				}
			}
		})
	}
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for i := 0; i < 4000; i++ {
				in := regInput{key: keys[rng.IntN(len(keys))]}
				call := now()
				res, err := st.Get(ctx, in.key)
				ret := now()
				if err != nil {
					if !errors.Is(err, kv.ErrUnavailable) {
						t.Errorf("get: %v", err)
						return
					}
					ready()
					continue // a failed read observed nothing
				}
				record(porcupine.Operation{ClientId: 2 + r, Input: in, Call: call,
					Output: regOutput{found: res.Found, value: string(res.Entry.Value)}, Return: ret})
			}
		})
	}
	// Faults while it runs: stream cuts, then the plugin killed.
	progress := func(n int64) {
		waitFor(t, fmt.Sprintf("%d operations", n), func() bool { return ops.Load() >= n })
	}
	for i := range 3 {
		progress(int64(500 * (i + 1)))
		if !st.CutCacheStream() {
			t.Fatal("the store has no read cache over SQLite")
		}
	}
	progress(2000)
	if err := syscall.Kill(st.PluginPid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := st.WaitRestart(wctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every worker has made its share of operations

	hits := testutil.ToFloat64(counter(t, reg, "kvhost_cache_hits_total"))
	if hits < 100 {
		t.Fatalf("only %v reads were served from the cache: the test did not exercise it", hits)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 2*time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("%d operations, %v cache hits: linearizable", len(history), hits)
	case porcupine.Illegal:
		path := filepath.Join(t.TempDir(), "history.html")
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("the history of %d operations is not linearizable", len(history))
	default:
		t.Fatalf("porcupine could not decide on %d operations within its bound: make the history smaller", len(history))
	}
}

// counter finds a registered metric by name.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name}, func() float64 { return mf.GetMetric()[0].GetCounter().GetValue() })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}
