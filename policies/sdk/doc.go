// Package sdk is the Go SDK for kvhost policies: WebAssembly modules that
// the host runs on every storage operation to allow it, deny it with a
// reason, or allow it with a rewritten TTL.
//
// A policy is one function registered from an init function:
//
//	package main
//
//	import (
//		"strings"
//
//		"github.com/kvhost/kvhost/policies/sdk"
//	)
//
//	func init() {
//		sdk.Handle(func(req sdk.Request) sdk.Decision {
//			if strings.HasPrefix(req.Key, "secret/") && req.Principal != "root" {
//				return sdk.Deny("only root may touch secret/")
//			}
//			return sdk.Allow()
//		})
//	}
//
//	func main() {}
//
// built with the stock toolchain as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o mypolicy.wasm ./mypolicy
//
// Registration must happen in init: a reactor's main function never runs.
// The host calls the module's _initialize export (which runs package
// initialisation), then kvhost_init with the operator's configuration,
// which the SDK hands to the function registered with Configure.
//
// The SDK implements the exports and the request and answer records of
// policy ABI v1, documented in policies/ABI.md. The record codec
// (DecodeRequest, AppendDecision) is ordinary portable Go, so a policy's
// logic can be tested natively with go test by building Requests directly.
//
// A handler should not allocate on its common path: in a Go policy one
// heap allocation costs about as much as the rest of an evaluation. So
// the Request's strings share memory with the SDK's request buffer and
// are valid until the handler returns (copy with strings.Clone to keep
// them), Allow and AllowWithTTL do not allocate, and only denials, which
// build a reason, usually do.
//
// Inside the sandbox there is no filesystem, network, real clock or real
// randomness: time.Now and math/rand see a deterministic fake. Use
// Request.Now, the host's clock at the time of the operation.
package sdk
