// Command kvhost-plugin-postgres serves the PostgreSQL backend as a kvhost
// plugin. The host starts it; it is not meant to be run by hand. Its data
// lives in the database, so its heap holds only requests in flight and
// watch buffers: a soft limit keeps the collector's slack bounded
// (GOMEMLIMIT overrides it).
package main

import (
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/postgres"
)

func main() { pluginapi.Serve(postgres.Open, pluginapi.WithMemoryLimit(128<<20)) }
