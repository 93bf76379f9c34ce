// Command kvhost-plugin-sqlite serves the SQLite backend as a kvhost plugin.
// The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

func main() { pluginapi.Serve(sqlite.Open) }
