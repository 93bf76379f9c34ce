// Command peer compares kvhost with etcd, side by side on one machine, on
// the operation kvhost's main workload is made of: a point get through the
// public API.
//
// It starts (or is given) a one-member etcd on loopback with its data in a
// temporary directory, two kvhost hosts on SQLite (bin/kvhost and its
// plugin), one with the host read cache as configured by default and one
// with it off, and, when redis-server is on PATH, a Redis without
// persistence as a reference. It loads the same keys into each, reads each
// key once everywhere (which fills the host cache), then measures in
// rounds:
//
//   - one client, one get at a time: the columns take turns op by op, in
//     an order that rotates every op, so that every column sees the same
//     moments of the machine's load; p50 and p99;
//   - 16 clients (goroutines sharing one client, as an application does)
//     for a few seconds per column, in slices of half a second, the
//     columns taking turns slice by slice in an order that rotates: gets
//     per second, p50 and p99 under load, and the CPU time the server and
//     the client spent per get.
//
// etcd is measured twice on the same server: with its default,
// linearizable gets (a ReadIndex round through raft before the read) and
// with serializable gets (the member's local state, which a one-member
// cluster makes current). kvhost's cached and uncached gets are both
// linearizable on SQLite; the comparison of like with like is against the
// linearizable column.
//
// It prints a markdown table, and with -write replaces the text between
// the markers of docs/PERFORMANCE.md with it:
//
//	<!-- peer-bench:begin ... -->
//	<!-- peer-bench:end -->
//
// Run it from the repository's root. scripts/peer-bench.sh (make
// peer-bench) installs etcd, builds kvhost and this program, and runs it:
//
//	scripts/peer-bench.sh                            # print the table
//	scripts/peer-bench.sh -write docs/PERFORMANCE.md # and put it in the doc
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/kv"
)

type config struct {
	kvhost, etcd, etcdEndpoint, redis string
	keys, valueSize, rounds, gets     int
	clients                           int
	duration, slice                   time.Duration
	write, profile                    string
}

func main() {
	var c config
	flag.StringVar(&c.kvhost, "kvhost", "bin/kvhost", "the kvhost binary, its plugins beside it (make build; run from the repository's root)")
	flag.StringVar(&c.etcd, "etcd", "etcd", "the etcd server binary to start")
	flag.StringVar(&c.etcdEndpoint, "etcd-endpoint", "", "use this running etcd (http://host:port) instead of starting one; its server CPU is then not measured")
	flag.StringVar(&c.redis, "redis", "redis-server", `redis-server binary for the reference column ("" for none; skipped when not found)`)
	flag.IntVar(&c.keys, "keys", 10_000, "keys loaded into each server")
	flag.IntVar(&c.valueSize, "value-size", 100, "bytes per value")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds, each a latency and a throughput phase per column")
	flag.IntVar(&c.gets, "gets", 2000, "single-client gets per column per round")
	flag.IntVar(&c.clients, "clients", 16, "concurrent clients in the throughput phase")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "throughput phase per column per round")
	flag.DurationVar(&c.slice, "slice", 500*time.Millisecond, "the throughput phase's columns take turns every slice")
	flag.StringVar(&c.write, "write", "", "replace the text between the peer-bench markers of this file (docs/PERFORMANCE.md) with the table")
	flag.StringVar(&c.profile, "profile", "", "directory for CPU profiles of the servers (kvhost host, etcd) and of this client, taken after the rounds in one more throughput phase per column")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

// Column indexes of the table; redis is last and optional.
const (
	colCache = iota
	colNoCache
	colEtcdLin
	colEtcdSer
	colRedis
)

func run(ctx context.Context, c config) error {
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "peer: "+format+"\n", args...) }
	kvhostBin, err := filepath.Abs(c.kvhost)
	if err != nil {
		return err
	}
	if _, err := os.Stat(kvhostBin); err != nil {
		return fmt.Errorf("kvhost binary: %w (run make build, or pass -kvhost)", err)
	}
	load0 := loadAvg() // before this program adds its own
	dir, err := os.MkdirTemp("", "kvhost-peer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Servers.
	cached, err := startKvhost(ctx, kvhostBin, dir, "kvhost-cache", "")
	if cached != nil {
		defer cached.stop()
	}
	if err != nil {
		return err
	}
	uncached, err := startKvhost(ctx, kvhostBin, dir, "kvhost-nocache", "cache: {max_bytes: -1}\n")
	if uncached != nil {
		defer uncached.stop()
	}
	if err != nil {
		return err
	}
	say("kvhost (cache) on %s, metrics %s; kvhost (no cache) on %s, metrics %s", cached.addr, cached.metrics, uncached.addr, uncached.metrics)

	var etcdProc *proc
	etcdURL := c.etcdEndpoint
	if etcdURL == "" {
		bin, err := exec.LookPath(c.etcd)
		if err != nil {
			return fmt.Errorf("etcd: %w (apt-get install etcd-server, or scripts/peer-bench.sh)", err)
		}
		etcdProc, etcdURL, err = startEtcd(bin, dir)
		if err != nil {
			return err
		}
		defer etcdProc.stop()
	}
	say("etcd on %s", etcdURL)

	var redisProc *proc
	var redisAddr string
	if c.redis != "" {
		if bin, err := exec.LookPath(c.redis); err == nil {
			redisProc, redisAddr, err = startRedis(bin, dir)
			if err != nil {
				return err
			}
			defer redisProc.stop()
			say("redis on %s", redisAddr)
		} else {
			say("no Redis column: %v", err)
		}
	}

	// Clients.
	kc, err := client.New(cached.addr)
	if err != nil {
		return err
	}
	defer kc.Close()
	ku, err := client.New(uncached.addr)
	if err != nil {
		return err
	}
	defer ku.Close()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	defer ec.Close()
	var rc *redis.Client
	if redisAddr != "" {
		rc = redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 2 * c.clients})
		defer rc.Close()
	}

	targets := []*target{
		colCache: {name: "kvhost, host cache hit", server: cached.proc, pprof: "http://" + cached.metrics,
			get: func(ctx context.Context, k string) error { _, err := kc.Get(ctx, k); return err }},
		colNoCache: {name: "kvhost, no cache", server: uncached.proc, pprof: "http://" + uncached.metrics,
			get: func(ctx context.Context, k string) error { _, err := ku.Get(ctx, k); return err }},
		colEtcdLin: {name: "etcd, linearizable (default)", server: etcdProc, pprof: pprofURL(etcdProc, etcdURL),
			get: func(ctx context.Context, k string) error { return etcdGet(ctx, ec, k) }},
		colEtcdSer: {name: "etcd, serializable", server: etcdProc, pprof: pprofURL(etcdProc, etcdURL),
			get: func(ctx context.Context, k string) error { return etcdGet(ctx, ec, k, clientv3.WithSerializable()) }},
	}
	if rc != nil {
		targets = append(targets, &target{name: "Redis GET (reference)", server: redisProc,
			get: func(ctx context.Context, k string) error { return rc.Get(ctx, k).Err() }})
	}

	// Data.
	keys := make([]string, c.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("peer/k%07d", i)
	}
	value := bytes.Repeat([]byte("v"), c.valueSize)
	say("loading %d keys of %d bytes into each server", c.keys, c.valueSize)
	for _, kcl := range []*client.Client{kc, ku} {
		if err := loadKvhost(ctx, kcl, keys, value); err != nil {
			return err
		}
	}
	if err := loadEtcd(ctx, ec, keys, value); err != nil {
		return err
	}
	if rc != nil {
		if err := loadRedis(ctx, rc, keys, value); err != nil {
			return err
		}
	}

	// Warm up: every key once through every column (this fills the host
	// cache), then a short throughput phase each.
	say("warming up")
	for _, k := range keys {
		for _, t := range targets {
			if err := t.get(ctx, k); err != nil {
				return fmt.Errorf("%s: get %q: %w", t.name, k, err)
			}
		}
	}
	for i, t := range targets {
		if _, err := concurrentPhase(ctx, t, keys, c.clients, time.Second, uint64(1000+i)); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	hits0, miss0 := cacheCounters(ctx, cached.metrics)

	// Rounds.
	run := &results{cfg: c, targets: targets, load0: load0}
	ours := func() time.Duration {
		d := selfCPU()
		for _, p := range []*proc{cached.proc, uncached.proc, etcdProc, redisProc} {
			d += p.cpu()
		}
		return d
	}
	busy0, ours0, wall0 := machineBusy(), ours(), time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for r := range c.rounds {
		cpu0 := serverCPUs(targets)
		lat, err := latencyPhase(ctx, targets, keys, c.gets, rng)
		if err != nil {
			return err
		}
		cpu1 := serverCPUs(targets)
		round := make([]sample, len(targets))
		for i, t := range targets {
			round[i].lat = lat[i]
			// A server's CPU over the phase, shared among its columns
			// (etcd has two), which made the same number of gets.
			round[i].latServerCPU = (cpu1[t.server] - cpu0[t.server]) / time.Duration(columnsOf(targets, t.server))
		}
		// The throughput phase in slices: every column runs for a slice
		// in turn, the order rotating, until each has had c.duration.
		passes := max(1, int(c.duration/c.slice))
		for pass := range passes {
			for j := range targets {
				i := (r + pass + j) % len(targets)
				s, err := concurrentPhase(ctx, targets[i], keys, c.clients, c.slice, uint64(r*1000+pass*10+i))
				if err != nil {
					return fmt.Errorf("%s: %w", targets[i].name, err)
				}
				x := &round[i]
				x.conc = append(x.conc, s.conc...)
				x.ops += s.ops
				x.elapsed += s.elapsed
				x.serverCPU += s.serverCPU
				x.clientCPU += s.clientCPU
			}
		}
		load := loadAvg()
		for i := range round {
			round[i].load = load
		}
		run.rounds = append(run.rounds, round)
		say("round %d of %d: load %.2f; %s", r+1, c.rounds, load, run.roundSummary(r))
	}
	// The two clocks tick apart: a quiet machine can come out a hair
	// below zero.
	run.othersCores = max(0, (machineBusy()-busy0-(ours()-ours0)).Seconds()/time.Since(wall0).Seconds())
	hits1, miss1 := cacheCounters(ctx, cached.metrics)
	run.hits, run.misses = hits1-hits0, miss1-miss0

	// Profiles, after the measured rounds so that profiling costs them
	// nothing: each column for c.duration without a break.
	if c.profile != "" {
		for i, t := range targets {
			prof := startProfiles(ctx, c.profile, t, c.duration)
			_, err := concurrentPhase(ctx, t, keys, c.clients, c.duration, uint64(9000+i))
			prof.wait()
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
		say("profiles in %s", c.profile)
	}

	// Versions.
	run.etcdVersion = etcdVersion(ctx, ec, etcdURL)
	if rc != nil {
		run.redisVersion = redisVersion(ctx, rc)
	}
	run.kvhostCommit = gitCommit()

	out := run.markdown()
	fmt.Print(out)
	if c.write != "" {
		if err := replaceBetweenMarkers(c.write, out); err != nil {
			return err
		}
		say("wrote the table into %s", c.write)
	}
	return nil
}

// serverCPUs is the CPU time of every server behind targets.
func serverCPUs(targets []*target) map[*proc]time.Duration {
	m := make(map[*proc]time.Duration)
	for _, t := range targets {
		if t.server != nil {
			m[t.server] = t.server.cpu()
		}
	}
	return m
}

// columnsOf counts the targets served by p.
func columnsOf(targets []*target, p *proc) int {
	n := 0
	for _, t := range targets {
		if t.server == p {
			n++
		}
	}
	return n
}

func etcdGet(ctx context.Context, ec *clientv3.Client, key string, opts ...clientv3.OpOption) error {
	r, err := ec.Get(ctx, key, opts...)
	if err != nil {
		return err
	}
	if len(r.Kvs) != 1 {
		return fmt.Errorf("etcd: get %q: %d keys", key, len(r.Kvs))
	}
	return nil
}

// pprofURL is where etcd serves /debug/pprof: on its client URL, when
// this program started it (with --enable-pprof).
func pprofURL(p *proc, url string) string {
	if p == nil {
		return ""
	}
	return url
}

func loadKvhost(ctx context.Context, c *client.Client, keys []string, value []byte) error {
	ops := make([]kv.Op, 0, kv.MaxBatchOps)
	for i, k := range keys {
		ops = append(ops, kv.PutOp(k, value, 0, kv.Condition{}))
		if len(ops) == kv.MaxBatchOps || i == len(keys)-1 {
			if _, err := c.Batch(ctx, ops); err != nil {
				return fmt.Errorf("kvhost: load: %w", err)
			}
			ops = ops[:0]
		}
	}
	return nil
}

// loadEtcd puts the keys in transactions of 128 puts, etcd's default
// --max-txn-ops, then lets etcd's read buffer settle.
//
// etcd before 3.4.24 and 3.5.0 (Debian's 3.4.23 among them) copies its
// backend's buffer of recently committed writes into every read
// transaction, at the length that buffer once grew to (the copy became
// shared in etcd PR 12933, backported to 3.4 in PR 15195). The buffer of
// the key bucket is dropped only at a backend commit that finds no write
// to it since the last one, and a commit happens only when something was
// written: after a bulk load and then nothing but reads, every get would
// copy thousands of entries, a cost of the load rather than of a get.
// A lease grant and revoke (writes outside the key bucket) bring on
// such commits, as any ongoing writes would.
func loadEtcd(ctx context.Context, ec *clientv3.Client, keys []string, value []byte) error {
	ops := make([]clientv3.Op, 0, 128)
	for i, k := range keys {
		ops = append(ops, clientv3.OpPut(k, string(value)))
		if len(ops) == cap(ops) || i == len(keys)-1 {
			if _, err := ec.Txn(ctx).Then(ops...).Commit(); err != nil {
				return fmt.Errorf("etcd: load: %w", err)
			}
			ops = ops[:0]
		}
	}
	for range 3 {
		time.Sleep(250 * time.Millisecond) // etcd commits its backend every 100 ms
		l, err := ec.Grant(ctx, 60)
		if err != nil {
			return fmt.Errorf("etcd: settle: %w", err)
		}
		time.Sleep(250 * time.Millisecond)
		if _, err := ec.Revoke(ctx, l.ID); err != nil {
			return fmt.Errorf("etcd: settle: %w", err)
		}
	}
	return nil
}

func loadRedis(ctx context.Context, rc *redis.Client, keys []string, value []byte) error {
	pairs := make([]any, 0, 2000)
	for i, k := range keys {
		pairs = append(pairs, k, value)
		if len(pairs) == cap(pairs) || i == len(keys)-1 {
			if err := rc.MSet(ctx, pairs...).Err(); err != nil {
				return fmt.Errorf("redis: load: %w", err)
			}
			pairs = pairs[:0]
		}
	}
	return nil
}

// cacheCounters reads the host cache's hit and miss counters from
// /metrics (0, 0 when it cannot).
func cacheCounters(ctx context.Context, metrics string) (hits, misses float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metrics+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "kvhost_cache_hits_total"):
			hits += v
		case strings.HasPrefix(f[0], "kvhost_cache_misses_total"):
			misses += v
		}
	}
	return hits, misses
}

// profiler takes CPU profiles of a server (over HTTP) and of this process
// for the length of one throughput phase.
type profiler struct {
	done chan struct{}
	self *os.File
}

func startProfiles(ctx context.Context, dir string, t *target, d time.Duration) *profiler {
	p := &profiler{done: make(chan struct{})}
	name := strings.NewReplacer(",", "", " ", "-", "(", "", ")", "").Replace(t.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "peer: profile:", err)
		close(p.done)
		return p
	}
	if f, err := os.Create(filepath.Join(dir, name+".client.pprof")); err == nil {
		if err := pprof.StartCPUProfile(f); err == nil {
			p.self = f
		} else {
			f.Close()
		}
	}
	go func() {
		defer close(p.done)
		if t.pprof == "" {
			return
		}
		secs := max(1, int((d-500*time.Millisecond)/time.Second))
		url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.pprof, secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peer: profile:", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "peer: profile %s: %s\n", url, resp.Status)
			return
		}
		f, err := os.Create(filepath.Join(dir, name+".server.pprof"))
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return p
}

func (p *profiler) wait() {
	if p.self != nil {
		pprof.StopCPUProfile()
		p.self.Close()
	}
	<-p.done
}

func etcdVersion(ctx context.Context, ec *clientv3.Client, url string) string {
	s, err := ec.Status(ctx, url)
	if err != nil {
		return "?"
	}
	return s.Version
}

func redisVersion(ctx context.Context, rc *redis.Client) string {
	info, err := rc.Info(ctx, "server").Result()
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// gitCommit is the checkout's commit, "+dirty" when it has changes.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	commit := strings.TrimSpace(string(out))
	if err := exec.Command("git", "diff", "--quiet", "HEAD").Run(); err != nil {
		commit += "+dirty"
	}
	return commit
}

// depVersion is the version of module path linked into this program.
func depVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "?"
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// machineBusy is the CPU time all processes have used, from /proc/stat
// (user, nice, system, irq, softirq and steal of every CPU).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
}

// cpuModel is /proc/cpuinfo's first model name.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

const (
	beginMarker = "<!-- peer-bench:begin"
	endMarker   = "<!-- peer-bench:end -->"
)

// replaceBetweenMarkers puts text between the begin and end marker lines
// of the file, keeping the markers.
func replaceBetweenMarkers(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, beginMarker)
	j := strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q markers to write between", path, beginMarker+" -->", endMarker)
	}
	nl := strings.IndexByte(s[i:], '\n')
	if nl < 0 || i+nl > j {
		return errors.New(path + ": the begin marker must be a line of its own")
	}
	s = s[:i+nl+1] + text + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
