package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/kvhost/kvhost/client"
	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/server"
	"github.com/kvhost/kvhost/internal/testbin"
)

// The tests run the real thing: a kvhost server (host/server over a
// host.Store) in this process, in front of the memory backend's plugin
// binary started over go-plugin, reached over TCP.

// exampleAddr is the address of a server TestMain starts for the examples.
var exampleAddr string

func TestMain(m *testing.M) {
	stop, err := startExampleServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the example server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// mainTB lets TestMain use testbin, which reports failures on a
// testing.TB: here a failure ends the process. Only the methods testbin
// calls are implemented.
type mainTB struct{ testing.TB }

func (mainTB) Helper() {}
func (mainTB) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(1)
}
func (mainTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func startExampleServer() (func(), error) {
	addr, stop, err := serve(testbin.Plugin(mainTB{}, "memory"), server.Options{Anonymous: true})
	exampleAddr = addr
	return stop, err
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// serve starts a store on the plugin binary and a server in front of it
// on a loopback port.
func serve(plugin string, opts server.Options) (addr string, stop func(), err error) {
	store, err := host.Open(context.Background(), host.Config{
		Plugin:          host.PluginConfig{Path: plugin},
		CleanupInterval: 50 * time.Millisecond,
		Logger:          quiet,
	})
	if err != nil {
		return "", nil, err
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := server.New(store, opts)
	if err != nil {
		store.Close()
		return "", nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		return "", nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		store.Close()
	}, nil
}

// startServer starts a server of its own for one test.
func startServer(t testing.TB, opts server.Options) string {
	t.Helper()
	addr, stop, err := serve(testbin.Plugin(t, "memory"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// anonymous starts a server that accepts anonymous calls and returns a
// client of it.
func anonymous(t testing.TB) *client.Client {
	t.Helper()
	return dial(t, startServer(t, server.Options{Anonymous: true}))
}

func dial(t testing.TB, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ctxOf bounds a test call so that a hang fails instead of stalling.
func ctxOf(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
