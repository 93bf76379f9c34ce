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
	pluginPath, err := cfg.PluginPath()
	if err != nil {
		return err
	}
	if cfg.Auth.Anonymous && !cfg.Loopback() {
		log.Warn("anonymous access is on and the API listens beyond loopback: anyone who can reach it can use it", "listen", cfg.Listen)
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
		Plugin:          host.PluginConfig{Path: pluginPath, SHA256: cfg.Backend.SHA256, Settings: cfg.Backend.Settings},
		Limits:          cfg.Limits,
		CleanupInterval: cfg.CleanupInterval,
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
		Tokens:         cfg.Auth.Tokens,
		Anonymous:      cfg.Auth.Anonymous,
		TLS:            tlsCfg,
		RequestTimeout: cfg.RequestTimeout,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(lis) }()

	var httpSrv *http.Server
	if m := *cfg.MetricsListen; m != "" {
		mlis, err := net.Listen("tcp", m)
		if err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
		httpSrv = &http.Server{Handler: server.HTTPHandler(store, reg), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := httpSrv.Serve(mlis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		log.Info("metrics listening", "addr", mlis.Addr().String())
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
