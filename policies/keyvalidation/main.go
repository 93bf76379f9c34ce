// Command keyvalidation is the keyvalidation policy as a WebAssembly
// reactor: build it with policies/build.sh. Its logic and configuration
// are documented in package validate.
package main

import (
	"github.com/kvhost/kvhost/policies/keyvalidation/validate"
	"github.com/kvhost/kvhost/policies/sdk"
)

var v *validate.Validator

func init() {
	sdk.Configure(func(cfg []byte) (err error) {
		v, err = validate.Parse(cfg)
		return err
	})
	sdk.Handle(func(req sdk.Request) sdk.Decision { return v.Evaluate(&req) })
}

func main() {}
