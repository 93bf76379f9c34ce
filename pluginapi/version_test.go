package pluginapi_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/kvhost/kvhost/kv"
	"github.com/kvhost/kvhost/pluginapi"
)

// oldPluginEnv makes this test binary, run by the host as a plugin, serve
// protocol version 1 only: a plugin built before contract v2.
const oldPluginEnv = "KVHOST_TEST_SERVE_PROTOCOL_V1"

func TestMain(m *testing.M) {
	if os.Getenv(oldPluginEnv) == "1" {
		hs := pluginapi.Handshake
		hs.ProtocolVersion = 1
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{1: {pluginapi.PluginName: v1Plugin{}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// v1Plugin stands for a v1 backend: the handshake fails before any call.
type v1Plugin struct{ plugin.NetRPCUnsupportedPlugin }

func (v1Plugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }
func (v1Plugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not used")
}

func TestOldProtocolIsRefusedByName(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(oldPluginEnv, "1")
	p, err := pluginapi.Start(t.Context(), pluginapi.StartConfig{Path: exe})
	if err == nil {
		p.Kill()
		t.Fatal("a plugin speaking protocol v1 was accepted by a v2 host")
	}
	if !errors.Is(err, kv.ErrInvalidArgument) {
		t.Errorf("error %v does not wrap ErrInvalidArgument: retrying cannot help", err)
	}
	for _, want := range []string{"speaks kvhost plugin protocol v1", "this host speaks v2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
