// Command denyf is a Go policy whose every answer is a denial with a
// formatted reason (sdk.Denyf), as the docs' examples build them: it
// allocates on every evaluation, so its guest heap fills and its garbage
// collector runs every few thousand evaluations. Keys under garbage/
// also allocate 64 KiB that nothing keeps, so that a few thousand
// evaluations run the collector as often as millions of ordinary ones.
// Keys under loop/ spin forever, to check that a deadline still stops it.
package main

import (
	"strings"

	"github.com/kvhost/kvhost/policies/sdk"
)

// garbage holds the last evaluation's garbage, so that the compiler
// cannot leave it out.
var garbage []byte

func init() {
	sdk.Handle(func(req sdk.Request) sdk.Decision {
		if strings.HasPrefix(req.Key, "loop/") {
			for {
			}
		}
		if strings.HasPrefix(req.Key, "garbage/") {
			garbage = make([]byte, 64<<10)
		}
		return sdk.Denyf("%s may not %s %q in tenant %q (value of %d bytes)", req.Principal, req.Op, req.Key, req.Tenant, req.ValueLen).WithCode("denied")
	})
}

func main() {}
