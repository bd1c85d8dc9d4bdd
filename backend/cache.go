package backend

import "sync"

// Cache keeps decoded copies of storage entries in memory, so that the hot
// read path makes no storage round trip. Storage stays the durable copy:
// writers Set after they store, and anyone may Drop (Vault's Invalidate).
type Cache[T any] struct {
	mu    sync.RWMutex
	items map[string]T
	// epoch counts changes (sets and drops): a load that began before one
	// does not cache its result, which may be older than the change.
	epoch uint64
}

// Get returns the cached value.
func (c *Cache[T]) Get(key string) (T, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.items[key]
	return v, ok
}

// Load returns the cached value or calls load and caches what it found.
func (c *Cache[T]) Load(key string, load func() (T, bool, error)) (T, bool, error) {
	c.mu.RLock()
	v, ok := c.items[key]
	epoch := c.epoch
	c.mu.RUnlock()
	if ok {
		return v, true, nil
	}
	v, found, err := load()
	if err != nil || !found {
		return v, found, err
	}
	c.mu.Lock()
	if c.epoch == epoch {
		c.set(key, v)
	}
	c.mu.Unlock()
	return v, true, nil
}

// Set caches a value just written to storage.
func (c *Cache[T]) Set(key string, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(key, v)
}

func (c *Cache[T]) set(key string, v T) {
	if c.items == nil {
		c.items = make(map[string]T)
	}
	c.items[key] = v
	c.epoch++
}

// Drop forgets one key.
func (c *Cache[T]) Drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, key)
	c.epoch++
}

// Clear forgets everything.
func (c *Cache[T]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = nil
	c.epoch++
}

// Each calls fn for every cached entry (under the read lock: fn must not
// call back into the cache).
func (c *Cache[T]) Each(fn func(key string, v T)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, v := range c.items {
		fn(k, v)
	}
}

// Len is the number of cached entries.
func (c *Cache[T]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}
