package main_test

import (
	"net/http"
	"testing"
)

// enable_pprof reaches the metrics listener of the real binary, behind the
// metrics token; without it there is no profiler.
func TestPprofOnMetricsListener(t *testing.T) {
	get := func(t *testing.T, url, token string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	on := startServer(t, "auth: {anonymous: true}\nenable_pprof: true\nmetrics_token: m-tok\n")
	base := "http://" + on.metrics
	if code := get(t, base+"/debug/pprof/cmdline", ""); code != http.StatusUnauthorized {
		t.Errorf("profiler without the token: %d, want 401", code)
	}
	if code := get(t, base+"/debug/pprof/goroutine?debug=1", "m-tok"); code != http.StatusOK {
		t.Errorf("profiler with the token: %d, want 200", code)
	}
	off := startServer(t, "auth: {anonymous: true}\n")
	if code := get(t, "http://"+off.metrics+"/debug/pprof/", ""); code != http.StatusNotFound {
		t.Errorf("profiler when not enabled: %d, want 404", code)
	}
}
