package backend

import (
	"container/list"
	"strings"
	"sync"
	"sync/atomic"
)

// Cache keeps decoded copies of storage entries in memory, so that the hot
// read path makes no storage round trip. Storage stays the durable copy:
// writers Set after they store, and anyone may Drop (Vault's Invalidate).
// A Cache with a bound (SetBound) forgets its least recently used entries
// beyond it: storage still holds them.
type Cache[T any] struct {
	mu    sync.RWMutex
	items map[string]T
	// epoch counts changes (sets and drops): a load that began before one
	// does not cache its result, which may be older than the change.
	epoch uint64
	// max > 0 bounds the entries; order then holds them, front = most
	// recently used. bound mirrors max for Get, without a second lock.
	max   int
	bound atomic.Bool
	order *list.List
	elems map[string]*list.Element
}

// SetBound bounds the cache to max entries (0: unbounded).
func (c *Cache[T]) SetBound(max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
	c.bound.Store(max > 0)
	if max > 0 && c.order == nil {
		c.order, c.elems = list.New(), map[string]*list.Element{}
		for k := range c.items {
			c.elems[k] = c.order.PushFront(k)
		}
	}
	c.evict()
}

// Get returns the cached value.
func (c *Cache[T]) Get(key string) (T, bool) {
	if c.bound.Load() {
		c.mu.Lock() // a hit moves the entry to the front
		defer c.mu.Unlock()
		v, ok := c.items[key]
		if ok {
			c.order.MoveToFront(c.elems[key])
		}
		return v, ok
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.items[key]
	return v, ok
}

// Load returns the cached value or calls load and caches what it found.
func (c *Cache[T]) Load(key string, load func() (T, bool, error)) (T, bool, error) {
	if v, ok := c.Get(key); ok {
		return v, true, nil
	}
	c.mu.RLock()
	epoch := c.epoch
	c.mu.RUnlock()
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
	if c.max > 0 {
		if el, ok := c.elems[key]; ok {
			c.order.MoveToFront(el)
		} else {
			c.elems[key] = c.order.PushFront(key)
		}
		c.evict()
	}
}

// evict forgets the least recently used entries beyond the bound.
func (c *Cache[T]) evict() {
	for c.max > 0 && c.order.Len() > c.max {
		oldest := c.order.Back()
		key := oldest.Value.(string)
		c.order.Remove(oldest)
		delete(c.elems, key)
		delete(c.items, key)
	}
}

// Drop forgets one key.
func (c *Cache[T]) Drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(key)
	c.epoch++
}

func (c *Cache[T]) drop(key string) {
	delete(c.items, key)
	if el, ok := c.elems[key]; ok {
		c.order.Remove(el)
		delete(c.elems, key)
	}
}

// DropPrefix forgets every key that starts with prefix and says how many.
func (c *Cache[T]) DropPrefix(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.items {
		if strings.HasPrefix(k, prefix) {
			c.drop(k)
			n++
		}
	}
	c.epoch++
	return n
}

// Clear forgets everything.
func (c *Cache[T]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = nil
	if c.max > 0 {
		c.order, c.elems = list.New(), map[string]*list.Element{}
	}
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
