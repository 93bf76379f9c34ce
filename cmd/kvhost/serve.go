package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/config"
	"github.com/kvhost/kvhost/host/server"
)

func serveCommand() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the kvhost server",
		Long: `Run the kvhost server.

Without --config it runs on the SQLite backend with data under ./data,
listens on 127.0.0.1:7070 (metrics on 127.0.0.1:7071) and accepts anonymous
calls: a working store for a first session, reachable only from this machine.
With a config file, anonymous access is off unless the file turns it on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if cfgPath != "" {
				var err error
				if cfg, err = config.Load(cfgPath); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cfgPath)
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (YAML)")
	return cmd
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, cfg *config.File, cfgPath string) error {
	log := newLogger(cfg.LogLevel)
	slog.SetDefault(log)
	plugin, err := backendPlugin(cfg)
	if err != nil {
		return err
	}
	for _, exposure := range cfg.Insecure() {
		log.Error("INSECURE: the configuration allows " + exposure)
	}
	var tlsCfg *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := host.NewMetrics(reg)

	guard, closeGuard, err := newPolicyGuard(ctx, cfg, cfgPath, log, reg)
	if err != nil {
		return err
	}
	defer closeGuard()

	store, err := host.Open(ctx, host.Config{
		Plugin:          plugin,
		Limits:          cfg.Limits,
		CleanupInterval: cfg.CleanupInterval,
		Cache:           cfg.Cache,
		SlowThreshold:   cfg.SlowThreshold,
		Guard:           guard,
		Logger:          log,
		Metrics:         metrics,
	})
	if err != nil {
		return err
	}
	defer store.Close()

	srv, err := server.New(store, server.Options{
		Tokens:            cfg.Auth.Tokens,
		Anonymous:         cfg.Auth.Anonymous,
		AnonymousIdentity: host.Identity{Tenant: cfg.Auth.AnonymousTenant, Admin: cfg.Auth.AnonymousAdmin},
		TLS:               tlsCfg,
		RequestTimeout:    cfg.RequestTimeout,
		Logger:            log,
	})
	if err != nil {
		return err
	}
	if cfgPath != "" {
		stopReload := reloadTokensOnHangup(cfgPath, srv, log)
		defer stopReload()
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(lis) }()
	if cfg.ListenUnix != "" {
		mode, err := cfg.UnixMode()
		if err != nil {
			return err
		}
		ulis, err := server.ListenUnix(cfg.ListenUnix, mode)
		if err != nil {
			srv.Stop(context.Background())
			return fmt.Errorf("listen_unix: %w", err)
		}
		// Stop closes the listener, which removes the socket file; so
		// does this, on the paths that return before Stop.
		defer ulis.Close()
		go func() { errc <- srv.Serve(ulis) }()
		log.Info("listening on unix socket", "path", ulis.Path(), "mode", fmt.Sprintf("%#o", mode))
	}

	var httpSrv *http.Server
	if m := *cfg.MetricsListen; m != "" {
		mlis, err := net.Listen("tcp", m)
		if err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
		httpSrv = &http.Server{Handler: server.HTTPHandler(store, reg, server.HTTPOptions{MetricsToken: cfg.MetricsToken, Pprof: cfg.EnablePprof}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := httpSrv.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		log.Info("metrics listening", "addr", mlis.Addr().String(), "pprof", cfg.EnablePprof)
	}
	info := store.Info()
	log.Info("kvhost serving", "addr", lis.Addr().String(), "backend", info.Name, "backend_version", info.Version,
		"tls", tlsCfg != nil, "anonymous", cfg.Auth.Anonymous, "tokens", len(cfg.Auth.Tokens))

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("server failed", "error", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Stop(sctx)
	if httpSrv != nil {
		_ = httpSrv.Shutdown(sctx)
	}
	return err
}

// backendPlugin is the backend plugin a configuration names, with its
// settings: serve runs it under the host's supervisor, migrate starts it
// directly.
func backendPlugin(cfg *config.File) (host.PluginConfig, error) {
	path, err := cfg.PluginPath()
	if err != nil {
		return host.PluginConfig{}, err
	}
	return host.PluginConfig{Path: path, SHA256: cfg.Backend.SHA256, Settings: cfg.Backend.Settings,
		DisableSharedPages: cfg.Backend.SharedPages != nil && !*cfg.Backend.SharedPages}, nil
}

// reloadTokensOnHangup re-reads the configuration file's tokens on SIGHUP
// and swaps them in without a restart; calls in flight and new calls with
// a token in both sets never fail. A file that does not load is refused
// and the tokens in force stay. (The policy guard re-reads the file's
// policies on the same signal.)
func reloadTokensOnHangup(cfgPath string, srv *server.Server, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			cfg, err := config.Load(cfgPath)
			if err == nil {
				err = srv.SetTokens(cfg.Auth.Tokens)
			}
			if err != nil {
				log.Error("SIGHUP: tokens not reloaded; the ones in force stay", "error", err)
				continue
			}
			log.Info("SIGHUP: tokens reloaded", "tokens", len(cfg.Auth.Tokens))
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
