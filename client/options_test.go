package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/kv"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		target string
		want   bool
	}{
		{"127.0.0.1:7070", true},
		{"127.1.2.3:7070", true},
		{"[::1]:7070", true},
		{"localhost:7070", true},
		{"LOCALHOST:7070", true},
		{"localhost", true},
		{"dns:///localhost:7070", true},
		{"passthrough:///127.0.0.1:1", true},
		{"unix:///run/kvhost.sock", true},
		{"unix:relative.sock", true},
		{"10.0.0.1:7070", false},
		{"[2001:db8::1]:7070", false},
		{"kv.example.com:443", false},
		{"dns:///kv.example.com:443", false},
		{"localhost.example.com:7070", false},
		{"0.0.0.0:7070", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			if got := isLoopback(tt.target); got != tt.want {
				t.Errorf("isLoopback(%q) = %v, want %v", tt.target, got, tt.want)
			}
		})
	}
}

func TestNewRefusesEmptyAddress(t *testing.T) {
	if _, err := New(""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New(\"\") = %v, want ErrInvalidArgument", err)
	}
}

// unreachable returns a client of a loopback port nothing listens on.
func unreachable(t *testing.T) *Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Bad input is refused before anything is sent, so these pass against a
// server that does not exist.
func TestValidatesBeforeSending(t *testing.T) {
	c := unreachable(t)
	ctx := t.Context()
	badUTF8 := string([]byte{'k', 0xff})
	long := strings.Repeat("k", kv.MaxKeyLen+1)
	tests := []struct {
		name string
		call func() error
	}{
		{"get empty key", func() error { _, err := c.Get(ctx, ""); return err }},
		{"get invalid utf8", func() error { _, err := c.Get(ctx, badUTF8); return err }},
		{"get long key", func() error { _, err := c.Get(ctx, long); return err }},
		{"get NUL", func() error { _, err := c.Get(ctx, "a\x00b"); return err }},
		{"get-many bad key", func() error { _, err := c.GetMany(ctx, []string{"ok", badUTF8}); return err }},
		{"get-many too many", func() error {
			_, err := c.GetMany(ctx, make([]string, kv.MaxGetMany+1))
			return err
		}},
		{"put bad key", func() error { _, err := c.Put(ctx, badUTF8, nil); return err }},
		{"put negative ttl", func() error { _, err := c.Put(ctx, "k", nil, WithTTL(-time.Second)); return err }},
		{"put version 0", func() error { _, err := c.Put(ctx, "k", nil, IfVersion(0)); return err }},
		{"delete if-absent", func() error { _, err := c.Delete(ctx, "k", IfAbsent()); return err }},
		{"delete with ttl", func() error { _, err := c.Delete(ctx, "k", WithTTL(time.Second)); return err }},
		{"delete bad key", func() error { _, err := c.Delete(ctx, ""); return err }},
		{"list bad prefix", func() error { _, err := c.List(ctx, badUTF8); return err }},
		{"list negative limit", func() error { _, err := c.List(ctx, "p", Limit(-1)); return err }},
		{"list bad start-after", func() error { _, err := c.List(ctx, "p", StartAfter(badUTF8)); return err }},
		{"count bad prefix", func() error { _, err := c.Count(ctx, badUTF8); return err }},
		{"delete-prefix empty", func() error { _, err := c.DeletePrefix(ctx, ""); return err }},
		{"increment bad key", func() error { _, err := c.Increment(ctx, "", 1); return err }},
		{"refresh negative ttl", func() error { _, err := c.RefreshTTL(ctx, "k", -time.Second); return err }},
		{"refresh if-absent", func() error { _, err := c.RefreshTTL(ctx, "k", time.Second, IfAbsent()); return err }},
		{"refresh WithTTL", func() error { _, err := c.RefreshTTL(ctx, "k", time.Second, WithTTL(time.Second)); return err }},
		{"batch bad op", func() error {
			_, err := c.Batch(ctx, []kv.Op{kv.PutOp("ok", nil, 0, kv.Condition{}), kv.DeleteOp("", kv.Condition{})})
			return err
		}},
		{"watch bad prefix", func() error { _, err := c.Watch(ctx, badUTF8); return err }},
		{"all bad prefix", func() error {
			for _, err := range c.All(ctx, badUTF8) {
				return err
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	c := unreachable(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.Get(ctx, "k")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get against nothing = %v, want ErrUnavailable", err)
	}
}

func TestClosedClient(t *testing.T) {
	c := unreachable(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if _, err := c.Watch(t.Context(), ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v, want ErrClosed", err)
	}
}
