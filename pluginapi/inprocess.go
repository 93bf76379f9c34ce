package pluginapi

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/kvhost/kvhost/kv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// ServeInProcess serves a backend on the plugin protocol over an in-memory
// connection and returns a Client to it: the whole wire (encoding, limits,
// error mapping) without a subprocess. Closing the Client closes the
// backend and stops the server. It is for tests and benchmarks.
func ServeInProcess(ctx context.Context, open OpenFunc) (*Client, error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize), grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))), codecServerOption())
	p := &GRPCPlugin{Open: open}
	if err := p.GRPCServer(nil, srv); err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///inprocess",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize), codecCallOption()),
	)
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("%w: in-process connection: %w", kv.ErrUnavailable, err)
	}
	c := NewClient(conn)
	c.conn = closerFunc(func() error {
		err := conn.Close()
		srv.Stop()
		if cerr := p.closeBackend(); err == nil {
			err = cerr
		}
		return err
	})
	return c, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
