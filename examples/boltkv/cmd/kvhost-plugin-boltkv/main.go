// Command kvhost-plugin-boltkv serves the bbolt backend as a kvhost
// plugin. It is started by the kvhost host, not by hand.
package main

import (
	"github.com/kvhost/kvhost/examples/boltkv"
	"github.com/kvhost/kvhost/pluginapi"
)

func main() { pluginapi.Serve(boltkv.Open) }
