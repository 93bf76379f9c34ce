// Command kvhost-plugin-memory serves the in-memory backend as a kvhost
// plugin. It is started by the kvhost host, not by hand.
package main

import (
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/memory"
)

func main() { pluginapi.Serve(memory.Open) }
