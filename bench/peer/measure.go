package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is one column of the table: a way to get a key from a server.
type target struct {
	name   string // column header
	get    func(ctx context.Context, key string) error
	server *proc // whose CPU time the target's operations are charged; nil: not ours
	// pprof is the server's /debug/pprof base URL, "" when it has none.
	pprof string
}

// sample is what one target measured in one round.
type sample struct {
	lat []time.Duration // one client, one get at a time
	// latServerCPU is the server's CPU over the single-client gets (a
	// server behind two columns is charged half to each).
	latServerCPU time.Duration
	conc         []time.Duration // each get's latency under `clients` clients
	ops          int
	elapsed      time.Duration
	serverCPU    time.Duration // the server's CPU over the concurrent phase
	clientCPU    time.Duration // this process's CPU over the concurrent phase
	load         float64       // 1-minute load average when the round ended
}

func (s sample) opsPerSec() float64 { return float64(s.ops) / s.elapsed.Seconds() }

// latencyPhase gets n random keys one at a time through every target, the
// targets taking turns op by op (in an order that rotates each op) so that
// every one sees the same moments of the machine's load.
func latencyPhase(ctx context.Context, targets []*target, keys []string, n int, rng *rand.Rand) ([][]time.Duration, error) {
	lat := make([][]time.Duration, len(targets))
	for i := range lat {
		lat[i] = make([]time.Duration, 0, n)
	}
	for i := range n {
		key := keys[rng.IntN(len(keys))]
		for j := range targets {
			t := (i + j) % len(targets)
			t0 := time.Now()
			if err := targets[t].get(ctx, key); err != nil {
				return nil, err
			}
			lat[t] = append(lat[t], time.Since(t0))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return lat, nil
}

// concurrentPhase runs clients goroutines getting random keys through t
// for d, and returns what they did and what it cost in CPU.
func concurrentPhase(ctx context.Context, t *target, keys []string, clients int, d time.Duration, seed uint64) (sample, error) {
	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		mu     sync.Mutex
		all    []time.Duration
		errOne error
	)
	srv0, cli0 := t.server.cpu(), selfCPU()
	t0 := time.Now()
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			lat := make([]time.Duration, 0, 4096)
			for !stop.Load() {
				key := keys[rng.IntN(len(keys))]
				s := time.Now()
				if err := t.get(ctx, key); err != nil {
					mu.Lock()
					errOne = err
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(s))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	wg.Wait()
	elapsed := time.Since(t0)
	s := sample{
		conc:      all,
		ops:       len(all),
		elapsed:   elapsed,
		serverCPU: t.server.cpu() - srv0,
		clientCPU: selfCPU() - cli0,
	}
	if errOne != nil {
		return s, errOne
	}
	return s, ctx.Err()
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// quantile of sorted-in-place latencies.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q * float64(len(d)))
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i]
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	y := slices.Clone(x)
	slices.Sort(y)
	if len(y)%2 == 1 {
		return y[len(y)/2]
	}
	return (y[len(y)/2-1] + y[len(y)/2]) / 2
}
