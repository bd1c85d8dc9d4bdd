package backend

import (
	"context"
	"strings"
	"sync"
	"time"
)

// drops are the store's drop generations: a request records the Epoch when
// it begins, every drop of a key (or of a prefix of keys) records the epoch
// it made, and what a request fetches for a key dropped since it began is
// discarded. Memory only: a request does not outlive its node.
type drops struct {
	mu    sync.Mutex
	epoch uint64            // drops so far
	at    map[string]uint64 // key or prefix (ending in "/") -> epoch of its last drop
}

// Epoch is the store's drop generation now; a request records it before it
// reads what it is for (Want.Began). Never zero.
func (s *TokenStore) Epoch() uint64 {
	s.drops.mu.Lock()
	defer s.drops.mu.Unlock()
	return s.drops.epoch + 1
}

func (d *drops) mark(keyOrPrefix string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = map[string]uint64{}
	}
	d.epoch++
	d.at[keyOrPrefix] = d.epoch + 1
}

// since says whether key, or a prefix of it, was dropped after began.
func (d *drops) since(key string, began uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at[key] > began {
		return true
	}
	for i := range len(key) {
		if key[i] == '/' && d.at[key[:i+1]] > began {
			return true
		}
	}
	return false
}

// Drop deletes the token for key from storage and memory. A request that
// began before it stores nothing for key (DroppedError).
func (s *TokenStore) Drop(ctx context.Context, kv KV, key string) error {
	s.drops.mark(key)
	s.cache.Drop(key)
	s.bounded.Drop(key)
	s.ephemeral.drop(key)
	return kv.Delete(ctx, TokenPrefix+key)
}

// DropPrefix deletes every token whose key starts with prefix (ending in
// "/"), from storage and memory, and says how many were stored. A request
// that began before it stores nothing under the prefix.
func (s *TokenStore) DropPrefix(ctx context.Context, kv KV, prefix string) (int, error) {
	s.drops.mark(prefix)
	s.cache.DropPrefix(prefix)
	s.bounded.DropPrefix(prefix)
	s.ephemeral.dropPrefix(prefix)
	keys, err := StoredKeys(ctx, kv, prefix)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := kv.Delete(ctx, TokenPrefix+k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Touch records that the token of w.Key was handed out at: its LastRead,
// in storage and memory, in the key's lane. A token replaced or dropped
// since w.Began is left alone.
func (s *TokenStore) Touch(ctx context.Context, kv KV, w Want, at time.Time) error {
	unlock := s.lanes.lock(w.Key)
	defer unlock()
	if w.Began != 0 && s.drops.since(w.Key, w.Began) {
		return nil
	}
	cur, err := s.load(ctx, kv, w)
	if err != nil || cur == nil || !cur.LastRead.Before(at) {
		return err
	}
	touched := *cur
	touched.LastRead = at
	return s.put(ctx, kv, w, &touched)
}

// StoredKeys are the keys of the stored tokens under prefix, at any depth.
func StoredKeys(ctx context.Context, kv KV, prefix string) ([]string, error) {
	names, err := kv.List(ctx, TokenPrefix+prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			deeper, err := StoredKeys(ctx, kv, prefix+n)
			if err != nil {
				return nil, err
			}
			out = append(out, deeper...)
			continue
		}
		out = append(out, prefix+n)
	}
	return out, nil
}

// DropEphemeral forgets every memory-only token whose key starts with
// prefix, and says how many it held. A request that began before it keeps
// nothing under the prefix.
func (s *TokenStore) DropEphemeral(prefix string) int {
	s.drops.mark(prefix)
	return s.ephemeral.dropPrefix(prefix)
}
