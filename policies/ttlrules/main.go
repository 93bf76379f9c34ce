// Command ttlrules is the ttlrules policy as a WebAssembly reactor: build
// it with policies/build.sh. Its logic and configuration are documented in
// package ttl.
package main

import (
	"github.com/kvhost/kvhost/policies/sdk"
	"github.com/kvhost/kvhost/policies/ttlrules/ttl"
)

var rules *ttl.Rules

func init() {
	sdk.Configure(func(cfg []byte) (err error) {
		rules, err = ttl.Parse(cfg)
		return err
	})
	sdk.Handle(func(req sdk.Request) sdk.Decision { return rules.Evaluate(&req) })
}

func main() {}
