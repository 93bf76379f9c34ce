package policy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kvhost/kvhost/host/policy"
	wt "github.com/kvhost/kvhost/host/policy/internal/wasmtest"
)

func TestRunCasesReportsFailures(t *testing.T) {
	e := newEngine(t, nil)
	dir := t.TempDir()
	mustLoad(t, e, policy.Spec{Name: "gate", Path: writeWasm(t, dir, "g.wasm", handModule(onKey('l', spin), denyRecord("shut", "the gate is shut")))})
	cases := `
cases:
  - name: denied as expected
    request: {op: get, key: a}
    expect: {allow: false, policy: gate, code: shut, reason_contains: shut}
  - name: wrongly expects allow
    request: {op: get, key: a}
    expect: {allow: true}
  - name: wrong reason
    request: {op: get, key: a}
    expect: {allow: false, reason: "open"}
  - name: a failure is expected
    request: {op: get, key: loop}
    expect: {failure: true, allow: false}
`
	rep, err := policy.RunCases(context.Background(), e, []byte(cases))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out)
	if rep.Passed != 2 || rep.Failed != 2 {
		t.Fatalf("report:\n%s", out.String())
	}
	for _, want := range []string{
		"ok   denied as expected",
		`FAIL wrongly expects allow: denied by "gate" (the gate is shut), expected allow`,
		`FAIL wrong reason: reason "the gate is shut", expected "open"`,
		"2 passed, 2 failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseCasesRefusesMistakes(t *testing.T) {
	for _, c := range []string{
		"",
		"cases: []",
		"cases: [{request: {op: fly, key: a}, expect: {allow: true}}]",
		"cases: [{request: {key: a}, expect: {allow: true}}]",
		"cases: [{request: {op: get}}]",
		"cases: [{request: {op: get}, expect: {allow: true, colour: red}}]",
	} {
		if _, err := policy.ParseCases([]byte(c)); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

func TestBench(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "allow", Path: writeWasm(t, t.TempDir(), "a.wasm", handModule(nil, nil))})
	res, err := policy.Bench(context.Background(), e, policy.BenchOptions{Duration: 50 * time.Millisecond, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluations == 0 || res.Allowed != res.Evaluations || res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.String(), "per evaluation: p50") {
		t.Fatal(res.String())
	}
}

// Deadline misses are a figure of the result, not an error: on a loaded
// machine an evaluation may miss a deadline it meets when idle.
func TestBenchCountsDeadlineMisses(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "spin", Path: writeWasm(t, t.TempDir(), "s.wasm", handModule(onKey('l', spin), nil)), Timeout: time.Millisecond})
	res, err := policy.Bench(context.Background(), e, policy.BenchOptions{Duration: 50 * time.Millisecond,
		Requests: []policy.Request{{Op: policy.OpGet, Key: "loop"}, {Op: policy.OpGet, Key: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Timeouts == 0 || res.Timeouts != res.Failed || res.Allowed == 0 {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{
		fmt.Sprintf("%d failed, of which %d past the deadline", res.Failed, res.Timeouts),
		fmt.Sprintf("failed evaluations by kind: timeout %d", res.Timeouts),
		"slowest allowed:\n", "slowest failed: timeout:\n", `get "loop": `,
	} {
		if !strings.Contains(res.String(), want) {
			t.Errorf("%q lacks %q", res.String(), want)
		}
	}
	if s := res.Slowest["failed: timeout"]; len(s) == 0 || s[0].Request.Key != "loop" || s[0].Took < time.Millisecond {
		t.Errorf("slowest timeouts %+v", s)
	}
}

// Evaluations ends the measurement after exactly that many.
func TestBenchCountsEvaluations(t *testing.T) {
	e := newEngine(t, nil)
	mustLoad(t, e, policy.Spec{Name: "deny", Path: writeWasm(t, t.TempDir(), "d.wasm", handModule(nil, denyRecord("no", "never")))})
	res, err := policy.Bench(context.Background(), e, policy.BenchOptions{Evaluations: 1000, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluations != 1000 || res.Denied != 1000 || len(res.Slowest["denied"]) != 3 {
		t.Fatalf("result %+v", res)
	}
}

func TestSpecConfig(t *testing.T) {
	var sc policy.SpecConfig
	err := yaml.Unmarshal([]byte(`
name: ttl
path: policies/ttl.wasm
mode: audit
fail_open: true
timeout: 25ms
memory_limit_pages: 128
pool_size: 3
config:
  rules:
    - {prefix: "a:", max: 60s, required: true}
`), &sc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sc.Spec("/etc/kvhost")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "ttl" || s.Path != "/etc/kvhost/policies/ttl.wasm" || s.Mode != policy.Audit || !s.FailOpen ||
		s.Timeout != 25*time.Millisecond || s.MemoryLimitPages != 128 || s.PoolSize != 3 {
		t.Fatalf("spec %+v", s)
	}
	if want := `{"rules":[{"max":"60s","prefix":"a:","required":true}]}`; string(s.Config) != want {
		t.Fatalf("config %s, want %s", s.Config, want)
	}
	if _, err := (policy.SpecConfig{Path: "x", Mode: "strict"}).Spec(""); err == nil {
		t.Fatal("mode strict accepted")
	}
	j, err := policy.ConfigJSON([]byte("max_key_length: 10\nallowed_prefixes: [a/]\n"))
	if err != nil || string(j) != `{"allowed_prefixes":["a/"],"max_key_length":10}` {
		t.Fatalf("ConfigJSON: %s, %v", j, err)
	}
}

// signalWriter closes seen at the first write that contains want.
type signalWriter struct {
	want string
	once sync.Once
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func TestCloseWaitsAndRefuses(t *testing.T) {
	// The policy logs "spinning" before it spins, so that Close surely
	// comes while the evaluation runs.
	const msg = 2048
	bin := wt.Module{
		Imports:     []wt.Import{{Module: "kvhost", Name: "log", Params: []byte{wt.I32, wt.I32, wt.I32}}},
		MemoryPages: 1,
		Data:        []wt.Data{{Offset: msg, Bytes: []byte("spinning")}},
		Funcs:       wt.PolicyFuncs(wt.Cat(onKey('l', wt.I32Const(1), wt.I32Const(msg), wt.I32Const(8), wt.Call(0), spin), wt.I64Const(0))),
	}.Encode()
	logs := &signalWriter{want: "spinning", seen: make(chan struct{})}
	e, err := policy.NewEngine(context.Background(), policy.Options{CacheDir: cacheDir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mustLoad(t, e, policy.Spec{Name: "spin", Path: writeWasm(t, t.TempDir(), "s.wasm", bin), Timeout: 200 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := e.Evaluate(context.Background(), policy.Request{Op: policy.OpGet, Key: "loop"})
		done <- err
	}()
	<-logs.seen
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close has waited for the evaluation to end; the goroutine that ran
	// it may not have been scheduled since, so wait for its answer (the
	// bound only ends a test that would hang).
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the runaway evaluation succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("the evaluation did not end within a minute of Close returning")
	}
	if _, err := e.Evaluate(context.Background(), policy.Request{Op: policy.OpGet, Key: "a"}); err == nil {
		t.Fatal("evaluate after Close succeeded")
	}
	if err := e.Load(context.Background(), nil); err == nil {
		t.Fatal("load after Close succeeded")
	}
}
