// Command misbehave is a Go policy that misbehaves on demand, by key
// prefix, to test that the engine contains Go-runtime failures:
// loop/ spins, panic/ panics, alloc/ allocates without bound, log/ logs,
// value/ inspects the value, ttl/ rewrites the TTL, sleep/ sleeps an
// hour and denies saying how long the sleep took. Other keys are
// allowed. Config {"fail_init": "msg"} makes kvhost_init fail.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/kvhost/kvhost/policies/sdk"
)

var sink [][]byte

func init() {
	sdk.NeedValue()
	sdk.Configure(func(cfg []byte) error {
		var c struct {
			FailInit string `json:"fail_init"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return err
		}
		if c.FailInit != "" {
			return errors.New(c.FailInit)
		}
		return nil
	})
	sdk.Handle(func(req sdk.Request) sdk.Decision {
		switch {
		case strings.HasPrefix(req.Key, "loop/"):
			for {
			}
		case strings.HasPrefix(req.Key, "panic/"):
			panic("policy bug on " + req.Key)
		case strings.HasPrefix(req.Key, "alloc/"):
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		case strings.HasPrefix(req.Key, "log/"):
			for i := 0; i < 100; i++ {
				sdk.Infof("log line %d for %s", i, req.Key)
			}
		case strings.HasPrefix(req.Key, "value/"):
			if bytes.Contains(req.Value, []byte("forbidden")) {
				return sdk.Deny("the value says forbidden").WithCode("bad_value")
			}
		case strings.HasPrefix(req.Key, "ttl/"):
			return sdk.AllowWithTTL(time.Minute)
		case strings.HasPrefix(req.Key, "sleep/"):
			start := time.Now()
			time.Sleep(time.Hour)
			return sdk.Denyf("slept %v", time.Since(start).Round(time.Second)).WithCode("slept")
		case strings.HasPrefix(req.Key, "echo/"):
			return sdk.Denyf("op=%s key=%s principal=%s tenant=%s ttl=%v len=%d now=%d batch=%v",
				req.Op, req.Key, req.Principal, req.Tenant, req.TTL, req.ValueLen, req.Now.UnixMilli(), req.InBatch)
		}
		return sdk.Allow()
	})
}

func main() {}
