package backend

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// DefaultEphemeralTokens bounds the memory-only tokens of a TokenStore
// whose MaxEphemeral is zero.
const DefaultEphemeralTokens = 1000

// lru holds tokens in memory only, bounded in number (least recently used
// first out) and never past their expiry or reuse bound: tokens of other
// parties (exchanges of the subject tokens callers bring), which must not
// be written to storage, where a restart would keep them.
type lru struct {
	mu    sync.Mutex
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type lruItem struct {
	key string
	tok *StoredToken
}

// gone: past its expiry or its reuse bound, it is never handed out again.
// The reuse bound keeps HoldSkew, as holds do: a node whose clock lags by
// up to that much still stops reusing by then.
func (t *StoredToken) gone(now time.Time) bool {
	return !t.Expiry.After(now) || (!t.ReuseUntil.IsZero() && !t.ReuseUntil.After(now.Add(HoldSkew)))
}

func (c *lru) get(key string, now time.Time) (*StoredToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	t := el.Value.(*lruItem).tok
	if t.gone(now) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return t, true
}

// set holds t, first forgetting what is gone (an insert follows an IdP
// request, so the walk is cheap beside it), then the least recently used
// beyond max.
func (c *lru) set(key string, t *StoredToken, max int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items, c.order = map[string]*list.Element{}, list.New()
	}
	if el, ok := c.items[key]; ok {
		el.Value.(*lruItem).tok = t
		c.order.MoveToFront(el)
	} else {
		c.items[key] = c.order.PushFront(&lruItem{key: key, tok: t})
	}
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if item := el.Value.(*lruItem); item.tok.gone(now) {
			c.order.Remove(el)
			delete(c.items, item.key)
		}
		el = next
	}
	if max <= 0 {
		max = DefaultEphemeralTokens
	}
	for c.order.Len() > max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruItem).key)
	}
}

func (c *lru) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

// dropPrefix forgets every key that starts with prefix and says how many.
func (c *lru) dropPrefix(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for key, el := range c.items {
		if strings.HasPrefix(key, prefix) {
			c.order.Remove(el)
			delete(c.items, key)
			n++
		}
	}
	return n
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *lru) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items, c.order = nil, nil
}
