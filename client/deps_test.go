package client_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kvhost/kvhost/internal/testbin"
)

// An application that only talks to kvhost links no plugin machinery: the
// client's dependencies hold no go-plugin, yamux or hclog, and no kvhost
// package but the data model, the API, its error table and the cache
// bookkeeping the near cache shares with the host's.
func TestClientLinksNoPluginMachinery(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./client")
	cmd.Dir = testbin.ModuleRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./client: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/kvhost/kvhost/client":            true,
		"github.com/kvhost/kvhost/kv":                true,
		"github.com/kvhost/kvhost/api/kvhostv1":      true,
		"github.com/kvhost/kvhost/api/rpcerr":        true,
		"github.com/kvhost/kvhost/internal/cachemap": true,
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"hashicorp/go-plugin", "hashicorp/yamux", "hashicorp/go-hclog"} {
			if strings.Contains(dep, banned) {
				t.Errorf("the client depends on %s", dep)
			}
		}
		if strings.HasPrefix(dep, "github.com/kvhost/kvhost/") && !allowed[dep] {
			t.Errorf("the client depends on kvhost package %s", dep)
		}
	}
}
