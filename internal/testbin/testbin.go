// Package testbin finds or builds the project's binaries for tests that
// must run the real thing (plugin subprocesses, the kvhost server). `make
// test` builds them into bin/ and points KVHOST_BIN_DIR there; a bare
// `go test` builds them on first use into a temporary folder, once per
// test process.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
	tmp   string
)

// Path returns the path of the binary named name, built from the package
// pkg (a module-relative path such as "./plugins/memory/cmd/kvhost-plugin-memory").
func Path(t testing.TB, name, pkg string) string {
	t.Helper()
	if dir := os.Getenv("KVHOST_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if tmp == "" {
		d, err := os.MkdirTemp("", "kvhost-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		tmp = d
	}
	p := filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-o", p, pkg)
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	built[name] = p
	return p
}

// ModuleRoot returns the repository root.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testbin: cannot locate the module root")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Plugin returns the path of the named backend plugin binary
// (kvhost-plugin-NAME).
func Plugin(t testing.TB, name string) string {
	t.Helper()
	return Path(t, "kvhost-plugin-"+name, "./plugins/"+name+"/cmd/kvhost-plugin-"+name)
}
