// Package policytest builds policies from source for tests, so that
// go test works on a clean clone without prebuilt .wasm files:
//
//	path := policytest.Build(t, "policies/acl")
//
// Builds are cached under the user cache directory, keyed by the Go
// version and the contents of every Go source under policies/ (and of the
// built package), so unchanged policies are built once per machine.
package policytest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Names of the example policies.
var Examples = []string{"keyvalidation", "ttlrules", "acl"}

var mu sync.Mutex

// Build compiles the main package at pkg (a directory relative to the
// module root, such as "policies/acl" or "host/policy/testdata/spin") with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and returns the .wasm path.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	path, err := BuildPath(pkg)
	if err != nil {
		tb.Fatalf("policytest: %v", err)
	}
	return path
}

// BuildPath is Build without a testing.TB, for TestMain and benchmarks.
func BuildPath(pkg string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root, pkg)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "kvhost-policytest", key[:20])
	out := filepath.Join(dir, strings.ReplaceAll(filepath.ToSlash(pkg), "/", "_")+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+filepath.ToSlash(pkg))
	cmd.Dir = root
	cmd.Env = append(cleanEnv(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, os.Rename(tmp, out)
}

// cleanEnv drops variables of the test's own build that must not leak into
// a wasip1 build.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "GOOS", "GOARCH", "CGO_ENABLED", "GOWASM", "GOFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOFLAGS=-buildvcs=false")
}

func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the module root")
	}
	// file is <root>/policies/policytest/policytest.go
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root %s: %w", root, err)
	}
	return root, nil
}

// sourceKey hashes what a policy build depends on.
func sourceKey(root, pkg string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkg)
	var files []string
	for _, dir := range []string{"policies", pkg} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".go") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, f)
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
