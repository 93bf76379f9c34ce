// Package pgtest runs throwaway PostgreSQL clusters for tests that stop,
// crash or restart the server: each test gets a cluster of its own
// (Debian's pg_createcluster, as root) on a free port and under a random
// name, so that test runs side by side, and every other test's server,
// stay up. The cluster is dropped when the test ends.
//
// Such a test runs where the other PostgreSQL tests run: it skips, loudly,
// when KVHOST_TEST_POSTGRES_DSN is not set, and when the machine cannot
// run a cluster of its own (no root, no pg_createcluster); under CI=true
// either is a failure.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// DSNEnv names the environment variable that points the tests at the
// shared PostgreSQL server (scripts/services.sh sets it).
const DSNEnv = "KVHOST_TEST_POSTGRES_DSN"

// Cluster is a throwaway PostgreSQL cluster with a role kvhost (password
// kvhost) owning a database kvfault.
type Cluster struct {
	t       testing.TB
	version string
	name    string
	// Port is the cluster's TCP port on 127.0.0.1.
	Port string
	// DSN reaches the kvfault database as kvhost.
	DSN string
}

// Start creates and starts a throwaway cluster; it is stopped and dropped
// when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Getenv(DSNEnv) == "" { // the same skip rule as every PostgreSQL test
		if ci {
			t.Fatalf("%s is not set and CI=true: PostgreSQL tests cannot be skipped in CI (run scripts/services.sh)", DSNEnv)
		}
		t.Skipf("SKIPPING PostgreSQL TEST: %s is not set; run `eval \"$(scripts/services.sh)\"` to start a server", DSNEnv)
	}
	version := installedVersion()
	if _, err := exec.LookPath("pg_createcluster"); err != nil || os.Getuid() != 0 || version == "" {
		const msg = "a PostgreSQL fault test needs root, Debian's pg_createcluster and a server under /usr/lib/postgresql to run a throwaway cluster"
		if ci {
			t.Fatal(msg + " (CI=true: a fault test that cannot run is a failure)")
		}
		t.Skip("SKIPPING: " + msg)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	_ = lis.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{t: t, version: version, name: "kvfault" + hex.EncodeToString(b[:]), Port: port}
	c.DSN = "postgres://kvhost:kvhost@127.0.0.1:" + port + "/kvfault"
	c.run("pg_createcluster", "-p", port, version, c.name, "--", "-A", "trust")
	t.Cleanup(func() { _ = exec.Command("pg_dropcluster", "--stop", version, c.name).Run() })
	c.Start()
	c.run("su", "postgres", "-c", "psql -p "+port+" -c \"CREATE ROLE kvhost LOGIN PASSWORD 'kvhost'\" -c 'CREATE DATABASE kvfault OWNER kvhost'")
	return c
}

// installedVersion is the newest PostgreSQL major version installed, as
// scripts/services.sh chooses it, or "".
func installedVersion() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	var versions []string
	for _, d := range dirs {
		versions = append(versions, filepath.Base(filepath.Dir(filepath.Dir(d))))
	}
	if len(versions) == 0 {
		return ""
	}
	major := func(v string) int { n, _ := strconv.Atoi(v); return n } // "15", "16": majors since PostgreSQL 10
	slices.SortFunc(versions, func(a, b string) int { return major(a) - major(b) })
	return versions[len(versions)-1]
}

func (c *Cluster) run(args ...string) {
	c.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		c.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// Start starts the cluster and returns once it accepts connections
// (pg_ctl waits, recovering from a crash first if it was killed).
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctlcluster", c.version, c.name, "start")
}

// Stop stops the cluster in a pg_ctl shutdown mode: "fast" (sessions are
// ended, then a checkpoint) or "immediate" (every process quits at once,
// with no checkpoint, as in a crash: the next Start recovers from WAL).
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	c.run("pg_ctlcluster", c.version, c.name, "stop", "-m", mode)
}

// Restart is a fast stop and a start.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.run("pg_ctlcluster", c.version, c.name, "restart", "-m", "fast")
}
