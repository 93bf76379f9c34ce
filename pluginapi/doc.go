// Package pluginapi runs a kvhost storage backend as a plugin: the
// go-plugin glue on both sides of the process boundary (Serve in the
// plugin, Start in the host), the plugin protocol's client and server,
// and WatchHub, the watch fan-out with history replay that any backend
// can reuse. The contract itself — the Backend interface, its types,
// errors and rules — is package kv; its conformance suite is package
// pluginapi/conformance.
//
// # Writing a backend
//
// A store that gives transactions over ordered keys (bbolt, Pebble,
// Badger, FoundationDB...) needs only package pluginapi/kit: implement
// its four-method Tx and a View/Update Store, and the kit supplies
// versions, revisions, TTLs, conditions, batches, paging and watch with
// history (examples/boltkv is a whole backend in about 120 lines). A store
// with its own server-side atomicity, shared by several hosts (the Redis
// and PostgreSQL backends), implements the contract in full, as follows.
//
// A backend is a Go package with an OpenFunc and a ten-line main:
//
//	package main
//
//	import (
//		"github.com/kvhost/kvhost/pluginapi"
//		"example.com/mybackend"
//	)
//
//	func main() { pluginapi.Serve(mybackend.Open) }
//
// Open receives the operator's settings (string keys and values from the
// host's configuration file, backend.settings) and returns a kv.Backend.
// Refuse an unknown setting with an error wrapping kv.ErrInvalidArgument
// that names it. Implement kv.Watcher and kv.Expirer too when the backend
// can, and say so in Info.Capabilities: across the process boundary nobody
// can type-assert, so capabilities travel in Info.
//
// Watch support: keep a WatchHub, tell it the store's revision when the
// backend opens (SetRevision), Publish each commit's events after the
// commit, in revision order, and serve Watch with Subscribe. A backend
// that keeps history passes a History (its ReadHistory reads committed
// events from a revision on) and claims Capabilities.WatchHistory; the hub
// then replays, hands over to live events without a gap, and sends
// progress events to idle watches.
//
// Prove the backend keeps the contract with the conformance suite, from an
// ordinary test in your own module (conformance.Run in-process,
// conformance.RunGRPC over an in-process connection, conformance.RunPlugin
// against your built binary), or with one command:
//
//	kvhost plugin verify ./kvhost-plugin-mybackend --set path={tmp}/db
//
// # The wire
//
// The plugin protocol (pluginapi/internal/pluginpb, kvhost.plugin.v2) is a
// gRPC service whose messages mirror package kv's types; instants are Unix
// milliseconds. Errors travel as gRPC statuses with a reason in a
// google.rpc.ErrorInfo detail (api/rpcerr), so errors.Is and errors.As
// work on the host side as in the backend. The plugin server validates
// every request before the backend sees it, so the wire boundary is safe
// even for a backend that forgets to.
//
// # Versions of the protocol
//
// ProtocolVersion is 2. The host offers every protocol version it speaks
// (PluginSets) and go-plugin picks the highest one the plugin shares; a
// plugin that shares none is refused with a message naming both versions.
// Version 1 (contract v1, without revisions) is no longer spoken.
package pluginapi
