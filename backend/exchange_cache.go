package backend

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultExchangeCacheSize bounds an ExchangeCache whose Max is zero.
const DefaultExchangeCacheSize = 1000

// ExchangeCache holds the tokens of caller-supplied token exchanges, in
// memory only: they belong to whoever holds the subject token, so they are
// keyed by a SHA-256 of it (never the token itself), kept no longer than
// they are fresh, bounded in number (least recently used first out), and
// not written to storage, where a restart would otherwise keep other
// parties' tokens. A restart or failover costs one exchange more.
type ExchangeCache struct {
	Max int
	Now func() time.Time

	mu     sync.Mutex
	order  *list.List // front = most recently used
	items  map[string]*list.Element
	flight singleflight.Group
	// drops counts DropRole calls per role, so that an exchange in flight
	// across a drop is handed to its caller but not cached.
	drops map[string]uint64
}

func roleOfKey(key string) string { role, _, _ := strings.Cut(key, "\x00"); return role }

type exchangeItem struct {
	key string
	tok *StoredToken
}

// SubjectKey is the cache key of role's exchange of a subject token.
func SubjectKey(role, subjectTokenType, subjectToken string) string {
	sum := sha256.Sum256([]byte(subjectTokenType + "\x00" + subjectToken))
	return role + "\x00" + hex.EncodeToString(sum[:])
}

func (c *ExchangeCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Get returns the cached token for key when it matches fingerprint and has
// minRemaining left (capped at half its lifetime), else fetches one, at most
// once at a time per key and fingerprint. fresh says it was just fetched.
func (c *ExchangeCache) Get(ctx context.Context, key, fingerprint string, minRemaining time.Duration, fetch func(context.Context) (*Token, error)) (tok *StoredToken, fresh bool, err error) {
	if t := c.lookup(key, fingerprint, minRemaining); t != nil {
		return t, false, nil
	}
	flightCtx := context.WithoutCancel(ctx)
	v, err, _ := c.flight.Do(key+"\x00"+fingerprint, func() (any, error) {
		if t := c.lookup(key, fingerprint, minRemaining); t != nil {
			return exchangeResult{tok: t}, nil
		}
		gen := c.dropsOf(key)
		t, err := fetch(flightCtx)
		if err != nil {
			return nil, err
		}
		stored := &StoredToken{Token: *t, Fingerprint: fingerprint}
		c.put(key, stored, gen)
		return exchangeResult{tok: stored, fetched: true}, nil
	})
	if err != nil {
		return nil, false, err
	}
	r := v.(exchangeResult)
	return r.tok, r.fetched, nil
}

func (c *ExchangeCache) lookup(key, fingerprint string, minRemaining time.Duration) *StoredToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil
	}
	t := el.Value.(*exchangeItem).tok
	if !t.Expiry.After(c.now()) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil
	}
	if !freshEnough(t, fingerprint, minRemaining, c.now()) {
		return nil
	}
	c.order.MoveToFront(el)
	return t
}

func (c *ExchangeCache) dropsOf(key string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drops[roleOfKey(key)]
}

// put caches t unless its role was dropped since gen was read.
func (c *ExchangeCache) put(key string, t *StoredToken, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops[roleOfKey(key)] != gen {
		return
	}
	if c.items == nil {
		c.items, c.order = map[string]*list.Element{}, list.New()
	}
	if el, ok := c.items[key]; ok {
		el.Value.(*exchangeItem).tok = t
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&exchangeItem{key: key, tok: t})
	max := c.Max
	if max <= 0 {
		max = DefaultExchangeCacheSize
	}
	// Another party's token is held no longer than it lives: an insert
	// (which follows an HTTP exchange, so the walk is cheap beside it)
	// sweeps the expired ones first.
	now := c.now()
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if item := el.Value.(*exchangeItem); !item.tok.Expiry.After(now) {
			c.order.Remove(el)
			delete(c.items, item.key)
		}
		el = next
	}
	for c.order.Len() > max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*exchangeItem).key)
	}
}

// Len is how many exchanged tokens are held.
func (c *ExchangeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// DropRole forgets every exchanged token of role (its drop, its delete) and
// says how many it held.
func (c *ExchangeCache) DropRole(role string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops == nil {
		c.drops = map[string]uint64{}
	}
	c.drops[role]++
	prefix := role + "\x00"
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

// Clear forgets every exchanged token.
func (c *ExchangeCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items, c.order = nil, nil
}

// freshEnough is the token store's rule: the same request, and at least
// minRemaining left, capped at half the token's lifetime.
func freshEnough(t *StoredToken, fingerprint string, minRemaining time.Duration, now time.Time) bool {
	if t == nil || t.Fingerprint != fingerprint {
		return false
	}
	need := min(minRemaining, t.Expiry.Sub(t.ObtainedAt)/2)
	left := t.Remaining(now)
	return left >= need && left > 0
}

// exchangeResult is shared by every caller that joined one exchange.
type exchangeResult struct {
	tok     *StoredToken
	fetched bool
}
