package policy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kvhost/kvhost/host/policy"
	wt "github.com/kvhost/kvhost/host/policy/internal/wasmtest"
	"github.com/kvhost/kvhost/policies/policytest"
)

// cacheDir is shared by the tests of this package so that each module is
// compiled once.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	cacheDir = filepath.Join(dir, "kvhost-policytest", "wazero")
	os.Exit(m.Run())
}

// built returns the path of a policy built from source (cached).
func built(tb testing.TB, pkg string) string {
	tb.Helper()
	return policytest.Build(tb, pkg)
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEngine(tb testing.TB, logs *syncBuffer) *policy.Engine {
	tb.Helper()
	var h slog.Handler = slog.DiscardHandler
	if logs != nil {
		h = slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: cacheDir, Logger: slog.New(h)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return e
}

func writeWasm(tb testing.TB, dir, name string, bin []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, bin, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Hand-assembled policies. The request buffer is at 1024, so the key
// starts at 1024+48.
const keyAt = 1024 + 48

// onKey runs then when the key's first byte is c; the warm-up request's
// key starts with 'k', so these modules load fine and misbehave later.
func onKey(c byte, then ...[]byte) []byte {
	return wt.Cat(
		wt.I32Const(keyAt), []byte{0x2d, 0x00, 0x00}, // i32.load8_u
		wt.I32Const(int32(c)), []byte{0x46}, // i32.eq
		[]byte{0x04, 0x40}, wt.Cat(then...), []byte{0x0b},
	)
}

var (
	spin = wt.Loop(wt.Br(0))
	// grow memory 16 pages at a time until refused, then trap.
	growForever = wt.Cat(
		wt.Loop(wt.I32Const(16), []byte{0x40, 0x00}, wt.I32Const(-1), []byte{0x47}, wt.BrIf(0)),
		wt.Unreachable,
	)
)

// handModule builds a one-page policy whose evaluate runs body then
// answers with the record in answer (nil: allow).
func handModule(body []byte, answer []byte) []byte {
	ret := wt.I64Const(0)
	var data []wt.Data
	if answer != nil {
		data = []wt.Data{{Offset: 8192, Bytes: answer}}
		ret = wt.I64Const(8192<<32 | int64(len(answer)))
	}
	return wt.Module{
		MemoryPages: 1,
		Funcs:       wt.PolicyFuncs(wt.Cat(body, ret)),
		Data:        data,
	}.Encode()
}

// denyRecord encodes an answer record by hand, independently of the SDK.
func denyRecord(code, reason string) []byte {
	b := make([]byte, 16)
	b[0], b[1], b[2] = 1, 1, byte(len(code))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(reason)))
	return append(append(b, code...), reason...)
}

func ttlRecord(ttl time.Duration) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 1, 2
	binary.LittleEndian.PutUint64(b[8:], uint64(ttl.Milliseconds()))
	return b
}

func mustLoad(tb testing.TB, e *policy.Engine, specs ...policy.Spec) {
	tb.Helper()
	if err := e.Load(context.Background(), specs); err != nil {
		tb.Fatalf("Load: %v", err)
	}
}

func eval(tb testing.TB, e *policy.Engine, req policy.Request) (policy.Decision, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.Evaluate(ctx, req)
}

func describe(d policy.Decision, err error) string {
	return fmt.Sprintf("decision %+v, err %v", d, err)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
