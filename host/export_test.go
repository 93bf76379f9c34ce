package host

// CutCacheStream ends the read cache's change stream as a lost connection
// would, and says whether there was a cache.
func (s *Store) CutCacheStream() bool {
	if s.cache == nil {
		return false
	}
	return s.feed.cut()
}
