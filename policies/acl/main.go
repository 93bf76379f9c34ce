// Command acl is the acl policy as a WebAssembly reactor: build it with
// policies/build.sh. Its logic and configuration are documented in package
// access.
package main

import (
	"github.com/kvhost/kvhost/policies/acl/access"
	"github.com/kvhost/kvhost/policies/sdk"
)

var list *access.List

func init() {
	sdk.Configure(func(cfg []byte) (err error) {
		list, err = access.Parse(cfg)
		return err
	})
	sdk.Handle(func(req sdk.Request) sdk.Decision { return list.Evaluate(&req) })
}

func main() {}
