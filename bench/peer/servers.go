package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process this program started: it is stopped at the end,
// and its CPU time (with that of the processes it names in pids) is read
// to charge each measurement with what the server spent.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned (the only call of it)

	mu   sync.Mutex
	log  strings.Builder
	pids []int // the server's own pid first, then helpers (kvhost's plugin)
}

func (p *proc) addPid(pid int) {
	p.mu.Lock()
	p.pids = append(p.pids, pid)
	p.mu.Unlock()
}

// cpu is the user and system time the process and its helpers have used.
func (p *proc) cpu() time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	pids := append([]int(nil), p.pids...)
	p.mu.Unlock()
	var total time.Duration
	for _, pid := range pids {
		total += procCPU(pid)
	}
	return total
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// start runs cmd, keeps its output (stderr and stdout) and calls each
// line to scan with it.
func start(name string, cmd *exec.Cmd, scan func(p *proc, line string)) (*proc, error) {
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pids = []int{cmd.Process.Pid}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if p.log.Len() < 1<<20 {
				p.log.WriteString(line + "\n")
			}
			p.mu.Unlock()
			if scan != nil {
				scan(p, line)
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	go func() { _ = cmd.Wait(); _ = w.Close(); close(p.exited) }()
	return p, nil
}

var (
	addrRE    = regexp.MustCompile(`msg="kvhost serving" addr=(\S+)`)
	metricsRE = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	pluginRE  = regexp.MustCompile(`msg="backend plugin started" .* pid=(\d+)`)
)

// kvhostServer is a kvhost serve process on the SQLite plugin, in dir.
type kvhostServer struct {
	*proc
	addr, metrics string
}

// startKvhost runs bin serve with its own configuration and data in a new
// directory under dir; extra is appended to the configuration.
func startKvhost(ctx context.Context, bin, dir, name, extra string) (*kvhostServer, error) {
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfg := "listen: 127.0.0.1:0\n" +
		"metrics_listen: 127.0.0.1:0\n" +
		"enable_pprof: true\n" + // loopback only: for profiling a run by hand
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"auth: {anonymous: true}\n" +
		"log_level: info\n" + extra
	path := filepath.Join(dir, "kvhost.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s := &kvhostServer{}
	ready := make(chan string, 1)
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Dir = dir
	p, err := start(name, cmd, func(p *proc, line string) {
		if m := metricsRE.FindStringSubmatch(line); m != nil {
			p.mu.Lock()
			s.metrics = m[1]
			p.mu.Unlock()
		}
		if m := pluginRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			p.addPid(pid)
		}
		if m := addrRE.FindStringSubmatch(line); m != nil {
			select {
			case ready <- m[1]:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	s.proc = p
	select {
	case s.addr = <-ready:
	case <-time.After(time.Minute):
		p.stop()
		return nil, fmt.Errorf("%s did not start within a minute:\n%s", name, p.logText())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pids) < 2 {
		return s, fmt.Errorf("%s: no plugin pid in its log:\n%s", name, p.log.String())
	}
	return s, nil
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs a one-member etcd on loopback ports with its data in a
// new directory under dir, and returns it with its client URL. Its
// profiler is on, on the client URL, as kvhost's is on its metrics
// listener: only for -profile.
func startEtcd(bin, dir string) (*proc, string, error) {
	cport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	pport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	data := filepath.Join(dir, "etcd")
	cmd := exec.Command(bin,
		"--name", "peer-bench",
		"--data-dir", data,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "peer-bench="+purl,
		"--logger", "zap", "--log-level", "warn",
		"--enable-pprof",
	)
	p, err := start("etcd", cmd, nil)
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", cport), p); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, curl, nil
}

// startRedis runs redis-server without persistence on a loopback port.
func startRedis(bin, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
	p, err := start("redis", cmd, nil)
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(addr, p); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

// waitTCP waits until addr accepts connections, or p has exited.
func waitTCP(addr string, p *proc) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it listened on %s:\n%s", p.name, addr, p.logText())
		default:
		}
		time.Sleep(50 * time.Millisecond) // polling another process's start
	}
	return fmt.Errorf("%s did not listen on %s:\n%s", p.name, addr, p.logText())
}

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's times; it is
// 100 on every architecture Go runs Linux on.
const clockTick = 10 * time.Millisecond

// procCPU is the user plus system time of pid, from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	return time.Duration(ut+st) * clockTick
}
