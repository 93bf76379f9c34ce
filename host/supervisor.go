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
// notices when it dies (a failed call or the process exiting), and starts
// a new one with exponential backoff.
type supervisor struct {
	cfg        pluginapi.StartConfig
	log        *slog.Logger
	metrics    *Metrics
	minBackoff time.Duration
	maxBackoff time.Duration

	mu   sync.RWMutex
	cur  *pluginapi.Plugin
	info kv.Info
	gen  uint64 // bumped at every (re)start

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// restarted is signalled after every successful restart (for tests and callers that wait).
	restarted chan struct{}
}

func startSupervisor(ctx context.Context, cfg pluginapi.StartConfig, log *slog.Logger, m *Metrics, minB, maxB time.Duration) (*supervisor, error) {
	s := &supervisor{cfg: cfg, log: log, metrics: m, minBackoff: minB, maxBackoff: maxB,
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
	s.mu.Unlock()
	s.metrics.setUp(true)
	s.log.Info("backend plugin started", "backend", info.Name, "version", info.Version, "protocol", p.Negotiated, "pid", p.Pid())
	return nil
}

// backend returns the live plugin and its generation, or ErrUnavailable
// while it is down.
func (s *supervisor) backend() (*pluginapi.Plugin, uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return nil, 0, fmt.Errorf("%w: backend plugin is restarting", kv.ErrUnavailable)
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
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		s.mu.RLock()
		dead := s.cur != nil && s.cur.Exited()
		s.mu.RUnlock()
		if dead {
			s.restart()
		}
	}
}

func (s *supervisor) restart() {
	s.mu.Lock()
	old := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.metrics.setUp(false)
	if old != nil {
		old.Kill()
	}
	s.log.Error("backend plugin died; restarting", "path", s.cfg.Path)
	backoff := s.minBackoff
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
		backoff = min(backoff*2, s.maxBackoff)
	}
}

func (s *supervisor) close() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	p := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.metrics.setUp(false)
	if p != nil {
		p.Kill()
	}
}
