package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// supervisor keeps one backend plugin process running: it starts it,
// notices when it dies (a failed call or the process exiting) or stops
// answering (a ping that times out), and starts a new one with exponential
// backoff.
type supervisor struct {
	cfg     pluginapi.StartConfig
	log     *slog.Logger
	metrics *Metrics
	timing  supervision

	mu   sync.RWMutex
	cur  *pluginapi.Plugin
	info kv.Info
	gen  uint64 // bumped at every (re)start
	// hungSince is when the plugin last stopped answering pings; zero
	// while it answers. Calls fail fast while it is set.
	hungSince time.Time

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// restarted is signalled after every successful restart (for tests and callers that wait).
	restarted chan struct{}
}

// supervision is how the supervisor watches its plugin (Config's fields).
type supervision struct {
	minBackoff, maxBackoff time.Duration
	pingInterval           time.Duration
	pingTimeout            time.Duration
	hangTimeout            time.Duration
}

func startSupervisor(ctx context.Context, cfg pluginapi.StartConfig, log *slog.Logger, m *Metrics, timing supervision) (*supervisor, error) {
	s := &supervisor{cfg: cfg, log: log, metrics: m, timing: timing,
		kick: make(chan struct{}, 1), done: make(chan struct{}), restarted: make(chan struct{}, 1)}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

func (s *supervisor) start(ctx context.Context) error {
	p, err := pluginapi.Start(ctx, s.cfg)
	if err != nil {
		return err
	}
	info, err := p.Info(ctx)
	if err != nil {
		p.Kill()
		return fmt.Errorf("plugin %s: info: %w", s.cfg.Path, err)
	}
	s.mu.Lock()
	s.cur, s.info = p, info
	s.gen++
	s.hungSince = time.Time{}
	s.mu.Unlock()
	s.metrics.setUp(true)
	s.log.Info("backend plugin started", "backend", info.Name, "version", info.Version, "protocol", p.Negotiated, "pid", p.Pid())
	return nil
}

// backend returns the live plugin and its generation, or ErrUnavailable
// while it is down or not answering.
func (s *supervisor) backend() (*pluginapi.Plugin, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return nil, 0, fmt.Errorf("%w: backend plugin is restarting", kv.ErrUnavailable)
	}
	if !s.hungSince.IsZero() {
		return nil, 0, fmt.Errorf("%w: backend plugin has not answered for %v", kv.ErrUnavailable, time.Since(s.hungSince).Round(time.Millisecond))
	}
	return s.cur, s.gen, nil
}

func (s *supervisor) currentInfo() kv.Info {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.info
}

// report tells the supervisor a call on generation gen failed with err; an
// ErrUnavailable from a plugin whose process is gone triggers a restart.
func (s *supervisor) report(gen uint64, err error) {
	if !errors.Is(err, kv.ErrUnavailable) {
		return
	}
	s.mu.RLock()
	stale := s.cur != nil && s.gen == gen && s.cur.Exited()
	s.mu.RUnlock()
	if stale {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *supervisor) loop() {
	defer close(s.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ping := time.NewTicker(s.timing.pingInterval)
	defer ping.Stop()
	for {
		pingNow := false
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		case <-ping.C:
			pingNow = true
		}
		s.mu.RLock()
		cur := s.cur
		dead := cur != nil && cur.Exited()
		s.mu.RUnlock()
		switch {
		case dead:
			s.restart("backend plugin died; restarting", false)
		case pingNow && cur != nil && s.hung(cur):
			s.restart("backend plugin stopped answering; killing and restarting it", true)
		}
	}
}

// hung pings the plugin and reports whether it has failed to answer for
// longer than the hang timeout. From its first unanswered ping on, calls
// fail fast and the store is not ready.
func (s *supervisor) hung(p *pluginapi.Plugin) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.timing.pingTimeout)
	err := p.Ping(ctx)
	cancel()
	if s.ctx.Err() != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if !s.hungSince.IsZero() {
			s.log.Info("backend plugin answers again", "after", time.Since(s.hungSince).Round(time.Millisecond))
			s.hungSince = time.Time{}
			s.metrics.setUp(true)
		}
		return false
	}
	if s.hungSince.IsZero() {
		s.hungSince = time.Now().Add(-s.timing.pingTimeout)
		s.metrics.setUp(false)
		s.log.Warn("backend plugin does not answer; failing calls fast", "ping_timeout", s.timing.pingTimeout, "error", err)
	}
	return time.Since(s.hungSince) >= s.timing.hangTimeout
}

func (s *supervisor) restart(why string, abort bool) {
	s.mu.Lock()
	old := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.metrics.setUp(false)
	if old != nil && abort {
		old.Abort()
	} else if old != nil {
		old.Kill()
	}
	s.log.Error(why, "path", s.cfg.Path)
	backoff := s.timing.minBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		err := s.start(ctx)
		cancel()
		if err == nil {
			s.metrics.restarted()
			select {
			case s.restarted <- struct{}{}:
			default:
			}
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Error("restarting backend plugin failed", "attempt", attempt, "retry_in", backoff, "error", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, s.timing.maxBackoff)
	}
}

func (s *supervisor) close() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	p, hung := s.cur, !s.hungSince.IsZero()
	s.cur = nil
	s.mu.Unlock()
	s.metrics.setUp(false)
	switch {
	case p != nil && hung:
		p.Abort() // a graceful stop would wait on it forever
	case p != nil:
		p.Kill()
	}
}
