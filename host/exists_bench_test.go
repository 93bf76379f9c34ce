package host_test

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/internal/testbin"
	"github.com/kvhost/kvhost/kv"
)

// BenchmarkExists compares the two ways the host could answer Exists over
// a plugin: a keys-only list of the prefix key, limit 1 (what Exists
// does), and a get whose value the host would drop. Small values and
// 1 MiB ones, with 100 keys under the key as a prefix (the list must stop
// at the key itself). docs/RATIONALE.md has the figures, PostgreSQL's and
// Redis's included (measured with this benchmark over their plugins).
func BenchmarkExists(b *testing.B) {
	backends := map[string]host.PluginConfig{
		"memory": {Path: testbin.Plugin(b, "memory")},
		"sqlite": {Path: testbin.Plugin(b, "sqlite"), Settings: map[string]string{"path": filepath.Join(b.TempDir(), "kv.db")}},
	}
	for name, pc := range backends {
		b.Run(name, func(b *testing.B) {
			st, err := host.Open(b.Context(), host.Config{Plugin: pc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			ctx := b.Context()
			for _, size := range []int{16, 1 << 20} {
				key := "k" + strconv.Itoa(size)
				if _, err := st.Put(ctx, kv.PutRequest{Key: key, Value: bytes.Repeat([]byte("v"), size)}); err != nil {
					b.Fatal(err)
				}
				for i := range 100 {
					if _, err := st.Put(ctx, kv.PutRequest{Key: key + "/" + strconv.Itoa(i), Value: []byte("x")}); err != nil {
						b.Fatal(err)
					}
				}
				b.Run("list/"+strconv.Itoa(size), func(b *testing.B) {
					for b.Loop() {
						if r, err := st.Exists(ctx, key); err != nil || !r.Found {
							b.Fatal(r, err)
						}
					}
				})
				b.Run("get/"+strconv.Itoa(size), func(b *testing.B) {
					for b.Loop() {
						if r, err := st.Get(ctx, key); err != nil || !r.Found {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
