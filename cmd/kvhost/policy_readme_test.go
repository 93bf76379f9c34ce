package main_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeModule returns the files of the example policy module in the
// README's "Policies" section (each a fenced block after a line naming
// it, "`mypolicy/main.go`:"), and the shell block after "Then, in
// `mypolicy/`:".
func readmeModule(t *testing.T) (files map[string]string, script string) {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## Policies")
	if start < 0 {
		t.Fatal("README has no Policies section")
	}
	text = text[start+1:]
	if end := strings.Index(text, "\n## "); end >= 0 {
		text = text[:end]
	}
	caption := regexp.MustCompile("^`mypolicy/([^`]+)`")
	files = map[string]string{}
	var block string
	inBlock, next := false, ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inBlock && line == "```":
			inBlock = false
			if next == "script" {
				script = block
			} else if next != "" {
				files[next] = block
			}
			next = ""
		case inBlock:
			block += line + "\n"
		case strings.HasPrefix(line, "```"):
			inBlock, block = true, ""
		case strings.HasPrefix(line, "Then, in `mypolicy/`"):
			next = "script"
		case caption.MatchString(line):
			next = caption.FindStringSubmatch(line)[1]
		}
	}
	for _, f := range []string{"go.mod", "main.go", "cases.yaml"} {
		if files[f] == "" {
			t.Fatalf("README's Policies section has no mypolicy/%s block", f)
		}
	}
	if script == "" {
		t.Fatal("README's Policies section has no commands to run in mypolicy/")
	}
	return files, script
}

// The README's example policy module builds and passes its cases when
// its steps are followed as written, from an empty directory beside a
// kvhost checkout.
func TestReadmePolicyModule(t *testing.T) {
	files, script := readmeModule(t)
	kvhost := kvhostBin(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// ../kvhost: the checkout, with the binaries under test in bin/.
	dir := t.TempDir()
	checkout := filepath.Join(dir, "kvhost")
	if err := os.MkdirAll(filepath.Join(checkout, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "bin" {
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(checkout, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(kvhost, filepath.Join(checkout, "bin", "kvhost")); err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "mypolicy")
	if err := os.Mkdir(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-euxc", script)
	cmd.Dir = mod
	// Offline: the module cache has what kvhost itself needs.
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "GOOS", "GOARCH", "GOFLAGS", "GOPROXY", "CGO_ENABLED":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GOPROXY=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the README's steps failed: %v", err)
	}
	if !strings.Contains(string(out), "2 passed, 0 failed") {
		t.Fatal("policy test did not pass both cases")
	}
	if !strings.Contains(string(out), "evaluations (") {
		t.Fatal("policy bench printed no result")
	}
}
