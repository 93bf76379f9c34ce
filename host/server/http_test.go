package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kvhost/kvhost/host/server"
)

// The profiler is off unless asked for, and behind the metrics token when
// there is one, like /metrics.
func TestPprof(t *testing.T) {
	get := func(h http.Handler, path, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	reg := prometheus.NewRegistry()
	// The store is only read by /readyz, which these cases do not call.
	off := server.HTTPHandler(nil, reg, server.HTTPOptions{})
	if rec := get(off, "/debug/pprof/", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ with pprof off: %d, want 404", rec.Code)
	}

	open := server.HTTPHandler(nil, reg, server.HTTPOptions{Pprof: true})
	if rec := get(open, "/debug/pprof/", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("/debug/pprof/ with pprof on: %d %.200q", rec.Code, rec.Body.String())
	}

	guarded := server.HTTPHandler(nil, reg, server.HTTPOptions{Pprof: true, MetricsToken: "m-tok"})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/metrics"} {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {"m-tok", http.StatusOK}} {
			if rec := get(guarded, path, tc.token); rec.Code != tc.want {
				t.Errorf("%s with token %q: %d, want %d", path, tc.token, rec.Code, tc.want)
			}
		}
	}
	if rec := get(guarded, "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("/healthz must stay open: %d", rec.Code)
	}
}
