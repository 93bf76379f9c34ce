package sdk

import (
	"errors"
	"fmt"
)

// Features a policy can declare (the kvhost_features export).
const (
	// FeatureValue asks the host for the value bytes of put requests.
	FeatureValue = 1 << 0
)

var (
	// current is the request being evaluated; a package variable so that
	// the record decodes in place (in wasm, every struct copy is a
	// memmove through the host).
	current   Request
	handler   func(Request) Decision
	configure func([]byte) error
	features  int32
)

// Handle registers the policy's function. Call it from an init function.
func Handle(fn func(req Request) Decision) { handler = fn }

// Configure registers the hook that receives the operator's configuration
// once per instance, before the first request: the policy's "config"
// block from the host configuration, as JSON bytes ("null" when there is
// none). Returning an error refuses the policy at load time with that
// message, so validate thoroughly. Call it from an init function.
func Configure(fn func(config []byte) error) { configure = fn }

// NeedValue declares that the policy inspects value bytes. Without it the
// host sends only the value's length, which is cheaper. Call it from an
// init function or the Configure hook.
func NeedValue() { features |= FeatureValue }

// initPolicy runs the kvhost_init export's logic.
func initPolicy(config []byte) error {
	if handler == nil {
		return errors.New("sdk: no handler registered: call sdk.Handle from an init function (main does not run in a reactor)")
	}
	if configure != nil {
		cfg := append([]byte(nil), config...)
		if err := configure(cfg); err != nil {
			return err
		}
	}
	return nil
}

// evaluateRecord runs the kvhost_evaluate export's logic: it decodes the
// record and returns the answer record appended to dst, or nil for a
// plain allow.
func evaluateRecord(dst, record []byte) []byte {
	if err := decodeRequest(&current, record, false); err != nil {
		return AppendDecision(dst, Deny(fmt.Sprintf("policy could not read the request: %v", err)).WithCode("sdk_bad_request"))
	}
	d := handler(current)
	if d == (Decision{}) {
		return nil
	}
	return AppendDecision(dst, d)
}
