package policy_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvhost/kvhost/host/policy"
)

// A Go policy whose every answer is a formatted denial allocates on every
// evaluation, so its garbage collector runs every few thousand of them,
// and each such evaluation takes 20-30 times the usual. Beside goroutines
// that keep every P busy, Go's scheduler and the operating system set the
// evaluating thread aside for tens of milliseconds at a time: with a
// deadline in plain wall-clock time, 1 to 3 of every ~300K evaluations
// failed. The deadline now stops only what uses CPU past it
// (docs/RATIONALE.md, "Policy deadlines"): none may fail. The full 5
// million evaluations beside `make test` are in docs/PERFORMANCE.md.
func TestFormattedDenialsNeverMissTheDeadlineUnderLoad(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "denyf", Path: built(t, "host/policy/testdata/denyf")})
	stop := make(chan struct{})
	var hogs sync.WaitGroup
	var spun atomic.Int64
	for range 2 * runtime.GOMAXPROCS(0) {
		hogs.Add(1)
		go func() {
			defer hogs.Done()
			x := 0
			for {
				select {
				case <-stop:
					spun.Add(int64(x))
					return
				default:
				}
				for i := range 100_000 {
					x += i
				}
			}
		}()
	}
	defer func() { close(stop); hogs.Wait() }()
	req := policy.Request{Op: policy.OpPut, Key: "app/users/42", Principal: "alice", Tenant: "acme", ValueLen: 100}
	ctx := context.Background()
	for i := range n {
		_, err := e.Evaluate(ctx, req)
		var de *policy.DeniedError
		if !errors.As(err, &de) {
			t.Fatalf("evaluation %d of %d: %v, want a denial", i+1, n, err)
		}
	}
}

// A looping policy is still stopped near its deadline: the grace after
// it is counted in CPU time, which a loop uses as fast as it runs. 20
// times the deadline leaves room for -race and a busy machine; on an idle
// one the loop stops at about 1.25 times.
func TestLoopingGoPolicyStopsNearItsDeadline(t *testing.T) {
	e := newEngine(t, nil)
	const deadline = 10 * time.Millisecond
	mustLoad(t, e, policy.Spec{Name: "denyf", Path: built(t, "host/policy/testdata/denyf"), Timeout: deadline})
	start := time.Now()
	_, err := eval(t, e, policy.Request{Op: policy.OpGet, Key: "loop/1"})
	var fe *policy.FailureError
	if !errors.As(err, &fe) || fe.Kind != policy.FailTimeout {
		t.Fatalf("the loop answered %v, want a timeout", err)
	}
	if took := time.Since(start); took > 20*deadline {
		t.Errorf("a %v deadline stopped the loop only after %v", deadline, took)
	}
}
