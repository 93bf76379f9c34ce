package server_test

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/server"
	"github.com/kvhost/kvhost/internal/latency"
	"github.com/kvhost/kvhost/internal/testbin"
)

// BenchmarkServerGet: the public API hop in one process (Go client -> gRPC
// over TCP loopback -> server -> store -> memory plugin), to separate the
// server's own cost from the cost of one more process in the chain.
func BenchmarkServerGet(b *testing.B) {
	st, err := host.Open(b.Context(), host.Config{
		Plugin: host.PluginConfig{Path: testbin.Plugin(b, "memory")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New(st, server.Options{Anonymous: true})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop(b.Context())
	c, err := client.New(lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := b.Context()
	if _, err := c.Put(ctx, "actor/1", []byte("node-1")); err != nil {
		b.Fatal(err)
	}
	lat := latency.New(b.N)
	for b.Loop() {
		if err := lat.Time(func() error { _, err := c.Get(ctx, "actor/1"); return err }); err != nil {
			b.Fatal(err)
		}
	}
	lat.Report(b)
}
