package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	wt "github.com/kvhost/kvhost/host/policy/internal/wasmtest"
)

func TestScratchGrow(t *testing.T) {
	for _, limit := range []uint32{512, 4096, 65536} {
		for _, delta := range []int32{1, 16, 256} {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(limit))
			bin := wt.Module{MemoryPages: 1, Funcs: []wt.Func{{Export: "grow", Params: []byte{wt.I32}, Results: []byte{wt.I32}, Body: wt.Cat(wt.LocalGet(0), []byte{0x40, 0x00})}}}.Encode()
			m, err := r.Instantiate(ctx, bin)
			if err != nil {
				t.Fatal(err)
			}
			f := m.ExportedFunction("grow")
			var max, total time.Duration
			n := 0
			for {
				s := time.Now()
				res, _ := f.Call(ctx, uint64(delta))
				d := time.Since(s)
				total += d
				max = maxd(max, d)
				n++
				if int32(res[0]) == -1 {
					break
				}
			}
			t.Logf("limit %d delta %d: %d grows, total %v, max %v", limit, delta, n, total, max)
			r.Close(ctx)
		}
	}
}

func maxd(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
