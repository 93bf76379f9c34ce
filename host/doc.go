// Package host is the kvhost store as a library: it loads a backend plugin
// (a go-plugin subprocess speaking pluginapi), supervises it, keeps
// tenants apart, runs every operation through one checkpoint where limits
// and policies apply, records metrics, and runs TTL cleanup for backends
// that want it.
//
// The store is a stack of small layers over one kv.Backend, each a wrapper
// with one job: metered (metrics), limited (key, value and batch limits),
// guarded (policies), tenantView (tenancy) and, at the bottom, the
// supervised plugin. Open builds it over a plugin process; New builds it
// over any backend in this process (tests, embedding):
//
//	st, err := host.New(ctx, memory.New(), host.Config{})
//
// A Go program embeds the store without a server:
//
//	st, err := host.Open(ctx, host.Config{Plugin: host.PluginConfig{Path: "bin/kvhost-plugin-sqlite"}})
//	...
//	ctx = host.WithIdentity(ctx, host.Identity{Principal: "svc-a", Tenant: "acme"})
//	_, err = st.Put(ctx, kv.PutRequest{Key: "actor/42", Value: []byte("node-3")})
//
// Identity: every call acts for a principal and a tenant, taken from the
// context (WithIdentity; the server sets it from the caller's token) or
// Config.DefaultIdentity. Keys of different tenants never meet: the host
// stores (tenant, key) under "t/<tenant>/<key>", where a tenant name cannot
// contain '/', so the mapping is injective and prefix-preserving, and
// strips it again on the way out (get, list, watch).
//
// Supervision: when the plugin process dies, calls in flight fail fast with
// kv.ErrUnavailable, the host starts a new process with exponential
// backoff, and later calls succeed without restarting the host. Watches
// open at the time end with ErrUnavailable: the client resyncs and watches
// again. Close ends the plugin; on Linux the plugin is also ended if the
// host dies without closing (parent-death signal).
package host
