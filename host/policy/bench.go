package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Requests are evaluated in turn; default: one put of a short key.
	Requests []Request
	// Duration of the measurement, after a short warm-up; default 1s
	// unless Evaluations is set.
	Duration time.Duration
	// Evaluations, when set, ends the measurement after this many
	// evaluations (and after Duration, if that is set too, whichever
	// comes first).
	Evaluations int
	// Concurrency is the number of evaluating goroutines; default 1.
	Concurrency int
}

// BenchResult is the per-evaluation cost of the chain.
type BenchResult struct {
	Evaluations             int
	Allowed, Denied, Failed int
	// Timeouts counts the failures that ran past the deadline.
	Timeouts int
	// Failures counts the failed evaluations by kind ("timeout",
	// "trap", ...).
	Failures            map[string]int
	Mean, P50, P90, P99 time.Duration
	Max                 time.Duration
	// Floor is the p50 of timing an empty function the same way: the
	// measurement's own cost, included in the figures above.
	Floor time.Duration
	// Slowest holds, for each kind of outcome ("allowed", "denied",
	// "failed: timeout", ...), its slowest evaluations, slowest first.
	Slowest map[string][]BenchSample
}

// BenchSample is one timed evaluation.
type BenchSample struct {
	Took    time.Duration
	Request Request
	// Detail is the failure's message, for a failed evaluation.
	Detail string
}

// slowestKept is the number of slowest evaluations kept per kind.
const slowestKept = 3

// benchTally is one goroutine's count, merged at the end.
type benchTally struct {
	res     BenchResult
	lat     []time.Duration
	slowest map[string][]BenchSample
}

func (t *benchTally) record(req Request, took time.Duration, d Decision, err error) error {
	t.lat = append(t.lat, took)
	kind, detail := "allowed", ""
	var fe *FailureError
	switch {
	case err == nil && d.Allow:
		t.res.Allowed++
	case errors.Is(err, ErrDenied):
		t.res.Denied++
		kind = "denied"
	case errors.As(err, &fe):
		t.res.Failed++
		if fe.Kind == FailTimeout {
			t.res.Timeouts++
		}
		t.res.Failures[fe.Kind.String()]++
		kind, detail = "failed: "+fe.Kind.String(), fe.Error()
	default:
		return err
	}
	s := t.slowest[kind]
	if len(s) < slowestKept || took > s[len(s)-1].Took {
		s = append(s, BenchSample{Took: took, Request: req, Detail: detail})
		slices.SortFunc(s, func(a, b BenchSample) int { return int(b.Took - a.Took) })
		t.slowest[kind] = s[:min(len(s), slowestKept)]
	}
	return nil
}

// Bench measures the cost of Evaluate on the engine's chain, timing every
// call, and keeps the slowest evaluations of each kind. The
// `kvhost policy bench POLICY.wasm [--config CFG] [CASES.yaml]` command
// loads the policy as for RunCases, takes the requests of the cases file
// when given (CaseFile.Request), and prints the result.
func Bench(ctx context.Context, e *Engine, opts BenchOptions) (BenchResult, error) {
	if len(opts.Requests) == 0 {
		opts.Requests = []Request{{Op: OpPut, Key: "app/bench", ValueLen: 64, Principal: "bench"}}
	}
	if opts.Duration <= 0 && opts.Evaluations <= 0 {
		opts.Duration = time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	// Warm up: every instance of every policy.
	for i := 0; i < 200; i++ {
		if _, err := e.Evaluate(ctx, opts.Requests[i%len(opts.Requests)]); err != nil && !errors.Is(err, ErrDenied) && !errors.Is(err, ErrPolicyFailed) {
			return BenchResult{}, err
		}
	}
	var (
		mu      sync.Mutex
		tallies []*benchTally
		wg      sync.WaitGroup
		first   error
		left    atomic.Int64
	)
	left.Store(int64(opts.Evaluations))
	var deadline time.Time
	if opts.Duration > 0 {
		deadline = time.Now().Add(opts.Duration)
	}
	for g := 0; g < opts.Concurrency; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			t := &benchTally{lat: make([]time.Duration, 0, 1<<16), slowest: map[string][]BenchSample{}}
			t.res.Failures = map[string]int{}
			defer func() {
				mu.Lock()
				tallies = append(tallies, t)
				mu.Unlock()
			}()
			for i := g; ; i++ {
				if opts.Evaluations > 0 && left.Add(-1) < 0 {
					return
				}
				if i%64 == 0 && ((!deadline.IsZero() && time.Now().After(deadline)) || ctx.Err() != nil) {
					return
				}
				req := opts.Requests[i%len(opts.Requests)]
				start := time.Now()
				d, err := e.Evaluate(ctx, req)
				if err := t.record(req, time.Since(start), d, err); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if first != nil {
		return BenchResult{}, first
	}
	return merge(tallies), nil
}

// merge adds up the goroutines' tallies and summarises the timings.
func merge(tallies []*benchTally) BenchResult {
	res := BenchResult{Failures: map[string]int{}, Slowest: map[string][]BenchSample{}}
	var lat []time.Duration
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		res.Allowed += t.res.Allowed
		res.Denied += t.res.Denied
		res.Failed += t.res.Failed
		res.Timeouts += t.res.Timeouts
		for k, n := range t.res.Failures {
			res.Failures[k] += n
		}
		for k, s := range t.slowest {
			res.Slowest[k] = append(res.Slowest[k], s...)
		}
	}
	for k, s := range res.Slowest {
		slices.SortFunc(s, func(a, b BenchSample) int { return int(b.Took - a.Took) })
		res.Slowest[k] = s[:min(len(s), slowestKept)]
	}
	res.Evaluations = len(lat)
	res.Mean, res.P50, res.P90, res.P99, res.Max = summarize(lat)
	floor := make([]time.Duration, 10000)
	nop := func() {}
	for i := range floor {
		start := time.Now()
		nop()
		floor[i] = time.Since(start)
	}
	_, res.Floor, _, _, _ = summarize(floor)
	return res
}

func summarize(lat []time.Duration) (mean, p50, p90, p99, max time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	at := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return sum / time.Duration(len(lat)), at(0.50), at(0.90), at(0.99), lat[len(lat)-1]
}

// String formats the result for people: the counts, failures by kind,
// the timings, and the slowest evaluations of each kind.
func (r BenchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d evaluations (%d allowed, %d denied, %d failed, of which %d past the deadline)\n",
		r.Evaluations, r.Allowed, r.Denied, r.Failed, r.Timeouts)
	if len(r.Failures) > 0 {
		kinds := make([]string, 0, len(r.Failures))
		for k, n := range r.Failures {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(&b, "failed evaluations by kind: %s\n", strings.Join(kinds, ", "))
	}
	fmt.Fprintf(&b, "per evaluation: p50 %v  p90 %v  p99 %v  mean %v  max %v  (timing floor %v)",
		r.P50, r.P90, r.P99, r.Mean, r.Max, r.Floor)
	kinds := make([]string, 0, len(r.Slowest))
	for k := range r.Slowest {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "\nslowest %s:", k)
		for _, s := range r.Slowest[k] {
			fmt.Fprintf(&b, "\n  %v  %s %q", s.Took.Round(time.Microsecond), s.Request.Op, s.Request.Key)
			if s.Detail != "" {
				fmt.Fprintf(&b, ": %s", s.Detail)
			}
		}
	}
	return b.String()
}
