// Command kvhost-plugin-sqlite serves the SQLite backend as a kvhost plugin.
// The host starts it; it is not meant to be run by hand. Its data lives in
// the database file, so its heap holds only requests in flight: a soft
// limit keeps the collector's slack bounded (GOMEMLIMIT overrides it).
package main

import (
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/sqlite"
)

func main() { pluginapi.Serve(sqlite.Open, pluginapi.WithMemoryLimit(128<<20)) }
