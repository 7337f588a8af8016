package check

// CacheEntries exposes the sub-problem cache's size to the external tests.
func CacheEntries(c *Checker) int {
	if c.cache == nil {
		return 0
	}
	return c.cache.entries()
}

// CacheEntryBytes is the memory the cache accounts to one entry.
const CacheEntryBytes = cacheEntryBytes

// ObjectReadLimit is the most relationships an object may have to be read whole.
const ObjectReadLimit = objectReadLimit
