package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// results are every round's samples, a row of one per target each.
type results struct {
	cfg     config
	targets []*target
	rounds  [][]sample
	load0   float64 // before the servers started
	// othersCores is the CPU that processes other than the servers and
	// this program used during the rounds, in cores.
	othersCores float64

	hits, misses float64 // the host cache's, over the rounds

	etcdVersion, redisVersion, kvhostCommit string
}

// pooled joins target i's samples over all rounds.
func (r *results) pooled(i int) sample {
	var s sample
	for _, round := range r.rounds {
		x := round[i]
		s.lat = append(s.lat, x.lat...)
		s.latServerCPU += x.latServerCPU
		s.conc = append(s.conc, x.conc...)
		s.ops += x.ops
		s.elapsed += x.elapsed
		s.serverCPU += x.serverCPU
		s.clientCPU += x.clientCPU
	}
	return s
}

// latRatio is target a's single-client p50 over b's, pooled and per round.
func (r *results) latRatio(a, b int) (float64, []float64) {
	pa, pb := r.pooled(a), r.pooled(b)
	all := us(quantile(pa.lat, 0.5)) / us(quantile(pb.lat, 0.5))
	var each []float64
	for _, round := range r.rounds {
		each = append(each, us(quantile(round[a].lat, 0.5))/us(quantile(round[b].lat, 0.5)))
	}
	return all, each
}

// tputRatio is target a's gets per second over b's, pooled and per round.
func (r *results) tputRatio(a, b int) (float64, []float64) {
	all := r.pooled(a).opsPerSec() / r.pooled(b).opsPerSec()
	var each []float64
	for _, round := range r.rounds {
		each = append(each, round[a].opsPerSec()/round[b].opsPerSec())
	}
	return all, each
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func fmtUs(d time.Duration) string { return fmt.Sprintf("%.0f µs", us(d)) }

// fmtRange is "lo–hi" of per-round ratios.
func fmtRange(x []float64) string {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return fmt.Sprintf("%.2f–%.2f", lo, hi)
}

func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(" ") // a thin space, as docs/PERFORMANCE.md writes 5 560
		}
		b.WriteRune(c)
	}
	return b.String()
}

// roundSummary is one line of progress for round i.
func (r *results) roundSummary(i int) string {
	var parts []string
	for j, t := range r.targets {
		s := r.rounds[i][j]
		parts = append(parts, fmt.Sprintf("%s p50 %.0f µs, %.0f/s", t.name, us(quantile(s.lat, 0.5)), s.opsPerSec()))
	}
	return strings.Join(parts, "; ")
}

func (r *results) loadRange() (lo, hi float64) {
	lo, hi = r.rounds[0][0].load, r.rounds[0][0].load
	for _, round := range r.rounds {
		lo, hi = min(lo, round[0].load), max(hi, round[0].load)
	}
	return lo, hi
}

// markdown is the generated part of the PERFORMANCE.md section.
func (r *results) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.cfg
	lo, hi := r.loadRange()
	p("Run of %s UTC: kvhost %s; etcd %s (server), go.etcd.io/etcd/client/v3 %s;", time.Now().UTC().Format("2006-01-02 15:04"),
		r.kvhostCommit, r.etcdVersion, depVersion("go.etcd.io/etcd/client/v3"))
	if r.redisVersion != "" {
		p(" Redis %s, go-redis %s;", r.redisVersion, depVersion("github.com/redis/go-redis/v9"))
	}
	p(" %s; `nproc` %d, CPU %q. Load: 1-minute load average %.2f before the run, %.2f–%.2f at the ends of its rounds (this run's own processes included); other processes used %.2f cores on average during the rounds",
		runtime.Version(), runtime.NumCPU(), cpuModel(), r.load0, lo, hi, r.othersCores)
	if r.othersCores > 0.5 || r.load0 > 3 {
		p(" (**a loaded machine**: rerun at a quieter moment)")
	}
	p(". %s keys of %d bytes in each server; %d round(s) of %s single-client gets per column, then %d clients for %v per column (in slices of %v).",
		thousands(float64(c.keys)), c.valueSize, c.rounds, thousands(float64(c.gets)), c.clients, c.duration, c.slice)
	if n := r.hits + r.misses; n > 0 {
		p(" The cached host served %.1f%% of its measured gets from the cache.", 100*r.hits/n)
	}
	p("\n\n")

	p("|")
	for _, t := range r.targets {
		p(" | %s", t.name)
	}
	p(" |\n|---")
	for range r.targets {
		p("|---")
	}
	p("|\n")
	row := func(label string, cell func(s sample) string) {
		p("| %s", label)
		for i := range r.targets {
			p(" | %s", cell(r.pooled(i)))
		}
		p(" |\n")
	}
	row("get p50, 1 client", func(s sample) string { return fmtUs(quantile(s.lat, 0.5)) })
	row("get p99, 1 client", func(s sample) string { return fmtUs(quantile(s.lat, 0.99)) })
	row("server CPU per get, 1 client", func(s sample) string {
		if s.latServerCPU == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f µs", us(s.latServerCPU)/float64(len(s.lat)))
	})
	row(fmt.Sprintf("gets/s, %d clients", c.clients), func(s sample) string { return thousands(s.opsPerSec()) })
	row(fmt.Sprintf("get p50 / p99, %d clients", c.clients), func(s sample) string {
		return fmt.Sprintf("%.0f / %.0f µs", us(quantile(s.conc, 0.5)), us(quantile(s.conc, 0.99)))
	})
	serverCPU := func(s sample) string {
		if s.serverCPU == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f µs", us(s.serverCPU)/float64(s.ops))
	}
	row(fmt.Sprintf("server CPU per get, %d clients", c.clients), serverCPU)
	row(fmt.Sprintf("client CPU per get, %d clients", c.clients), func(s sample) string {
		return fmt.Sprintf("%.0f µs", us(s.clientCPU)/float64(s.ops))
	})
	p("\n")

	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	lin, linEach := r.latRatio(colCache, colEtcdLin)
	ser, serEach := r.latRatio(colCache, colEtcdSer)
	tlin, tlinEach := r.tputRatio(colCache, colEtcdLin)
	tser, tserEach := r.tputRatio(colCache, colEtcdSer)
	ulin, ulinEach := r.latRatio(colNoCache, colEtcdLin)
	utlin, utlinEach := r.tputRatio(colNoCache, colEtcdLin)
	p("| issue 13 bar | against etcd linearizable (default): all rounds / each round | against etcd serializable: all rounds / each round | verdict (against the default) |\n")
	p("|---|---|---|---|\n")
	p("| host-cache hit p50 ≤ 0.8 × etcd get p50 | **%.2f ×** / %s | %.2f × / %s | %s |\n", lin, fmtRange(linEach), ser, fmtRange(serEach), verdict(lin <= 0.8))
	p("| %d-client gets/s (host cache) ≥ 1.2 × etcd's | **%.2f ×** / %s | %.2f × / %s | %s |\n", c.clients, tlin, fmtRange(tlinEach), tser, fmtRange(tserEach), verdict(tlin >= 1.2))
	p("| for reference: uncached get p50, %d-client gets/s | %.2f × / %s; %.2f × / %s | | |\n", c.clients, ulin, fmtRange(ulinEach), utlin, fmtRange(utlinEach))
	return b.String()
}
