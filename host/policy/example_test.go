package policy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kvhost/kvhost/host/policy"
	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/policies/policytest"
)

func Example() {
	ctx := context.Background()
	acl, err := policytest.BuildPath("policies/acl") // bin/policies/acl.wasm after make
	if err != nil {
		panic(err)
	}
	eng, err := policy.NewEngine(ctx, policy.Options{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer eng.Close(ctx)
	err = eng.Load(ctx, []policy.Spec{{
		Name:   "acl",
		Path:   acl,
		Config: []byte(`{"rules": [{"principals": ["alice"], "prefixes": ["app/"], "operations": ["read", "write"]}]}`),
	}})
	if err != nil {
		panic(err)
	}

	d, err := eng.Evaluate(ctx, policy.Request{Op: policy.OpPut, Key: "app/x", Principal: "alice"})
	fmt.Println(d.Allow, err)

	_, err = eng.Evaluate(ctx, policy.Request{Op: policy.OpPut, Key: "app/x", Principal: "bob"})
	fmt.Println(err)
	fmt.Println(errors.Is(err, kv.ErrPermissionDenied))
	// Output:
	// true <nil>
	// kvhost: permission denied: policy "acl": principal "bob" may not put key "app/x" (needs write)
	// true
}
