package pluginapi_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kvhost/kvhost/pluginapi"
	pb "github.com/kvhost/kvhost/pluginapi/internal/pluginpb"
	"github.com/kvhost/kvhost/plugins/memory"
)

// A plugin sends a list page packed only to a host that asks: a host
// built before packed pages reads entries, as it always did.
func TestPackedPagesOnlyWhenAsked(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	if err := (&pluginapi.GRPCPlugin{Open: memory.Open}).GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///inprocess",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := pb.NewBackendClient(conn)
	ctx := t.Context()
	if _, err := rpc.Open(ctx, &pb.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := rpc.Put(ctx, &pb.PutRequest{Key: k, Value: []byte("v-" + k)}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := rpc.List(ctx, &pb.ListRequest{Limit: 10})
	if err != nil || len(old.Entries) != 2 || len(old.Packed) != 0 || old.Entries[1].Key != "b" {
		t.Fatalf("a host that does not ask: %v %v, want two entries, nothing packed", old, err)
	}
	packed, err := rpc.List(ctx, &pb.ListRequest{Limit: 10, Packed: true})
	if err != nil || len(packed.Entries) != 0 || len(packed.Packed) == 0 {
		t.Fatalf("a host that asks: %v %v, want the page packed", packed, err)
	}
}
