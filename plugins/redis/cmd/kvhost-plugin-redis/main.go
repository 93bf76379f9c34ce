// Command kvhost-plugin-redis serves the Redis backend as a kvhost plugin.
// The host starts it; it is not meant to be run by hand. Its data lives in
// Redis, so its heap holds only requests in flight and the watch buffers:
// a soft limit keeps the collector's slack bounded (GOMEMLIMIT overrides it).
package main

import (
	"github.com/kvhost/kvhost/pluginapi"
	"github.com/kvhost/kvhost/plugins/redis"
)

func main() { pluginapi.Serve(redis.Open, pluginapi.WithMemoryLimit(128<<20)) }
