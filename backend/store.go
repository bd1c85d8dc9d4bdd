package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
)

// KV is the durable storage behind the token store: Vault's barrier
// storage in the plugin, a map in tests.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// TokenPrefix is where tokens live in storage.
const TokenPrefix = "tokens/"

// StoredToken is a token with the fingerprint of the request that minted it:
// a token minted for another client, operator or scope set is not reused.
type StoredToken struct {
	Token
	Fingerprint string `json:"fingerprint"`
}

// Fetch obtains a new token; current is the stale one, if any (its refresh
// token may serve).
type Fetch func(ctx context.Context, current *StoredToken) (*Token, error)

// TokenStore hands out cached tokens while they are fresh enough and fetches
// a new one at most once at a time per key, however many readers ask.
type TokenStore struct {
	cache  Cache[*StoredToken]
	flight singleflight.Group
	Now    func() time.Time
}

func (s *TokenStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Get returns a token for key that matches fingerprint and has at least
// minRemaining left, capped at half of the token's lifetime so that no
// min_ttl can make every read mint. fresh says the token was just fetched.
func (s *TokenStore) Get(ctx context.Context, kv KV, key, fingerprint string, minRemaining time.Duration, fetch Fetch) (tok *StoredToken, fresh bool, err error) {
	if t, ok := s.cache.Get(key); ok && s.usable(t, fingerprint, minRemaining) {
		return t, false, nil
	}
	// Callers that join the flight share its result; the first caller's
	// cancellation must not fail the others, and the IdP request carries its
	// own time bounds.
	flightCtx := context.WithoutCancel(ctx)
	// The flight is per fingerprint too: a reader must not join a fetch for
	// another client, operator or scope set and get its token.
	v, err, _ := s.flight.Do(key+"\x00"+fingerprint, func() (any, error) {
		current, err := s.load(flightCtx, kv, key)
		if err != nil {
			return nil, err
		}
		if s.usable(current, fingerprint, minRemaining) {
			return flightResult{tok: current}, nil
		}
		if current != nil && current.Fingerprint != fingerprint {
			current = nil // a refresh token of another request must not serve
		}
		t, err := fetch(flightCtx, current)
		if err != nil {
			return nil, err
		}
		stored := &StoredToken{Token: *t, Fingerprint: fingerprint}
		if err := s.put(flightCtx, kv, key, stored); err != nil {
			return nil, err
		}
		return flightResult{tok: stored, fetched: true}, nil
	})
	if err != nil {
		return nil, false, err
	}
	r := v.(flightResult)
	return r.tok, r.fetched, nil
}

// flightResult is shared by every reader that joined one flight.
type flightResult struct {
	tok     *StoredToken
	fetched bool
}

func (s *TokenStore) usable(t *StoredToken, fingerprint string, minRemaining time.Duration) bool {
	if t == nil || t.Fingerprint != fingerprint {
		return false
	}
	lifetime := t.Expiry.Sub(t.ObtainedAt)
	need := min(minRemaining, lifetime/2)
	return t.Remaining(s.now()) >= need && t.Remaining(s.now()) > 0
}

// Peek returns the cached or stored token without fetching.
func (s *TokenStore) Peek(ctx context.Context, kv KV, key string) (*StoredToken, error) {
	return s.load(ctx, kv, key)
}

func (s *TokenStore) load(ctx context.Context, kv KV, key string) (*StoredToken, error) {
	t, _, err := s.cache.Load(key, func() (*StoredToken, bool, error) {
		raw, err := kv.Get(ctx, TokenPrefix+key)
		if err != nil || raw == nil {
			return nil, false, err
		}
		var t StoredToken
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, false, fmt.Errorf("stored token %q is unreadable: %w", key, err)
		}
		return &t, true, nil
	})
	return t, err
}

func (s *TokenStore) put(ctx context.Context, kv KV, key string, t *StoredToken) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := kv.Put(ctx, TokenPrefix+key, raw); err != nil {
		return err
	}
	s.cache.Set(key, t)
	return nil
}

// Put stores t under key for fingerprint, replacing whatever was there: a
// token obtained outside Get (the authorization-code callback).
func (s *TokenStore) Put(ctx context.Context, kv KV, key, fingerprint string, t *Token) error {
	return s.put(ctx, kv, key, &StoredToken{Token: *t, Fingerprint: fingerprint})
}

// Drop deletes the token for key from storage and memory.
func (s *TokenStore) Drop(ctx context.Context, kv KV, key string) error {
	s.cache.Drop(key)
	return kv.Delete(ctx, TokenPrefix+key)
}

// Forget drops the in-memory copy only (another node changed storage).
func (s *TokenStore) Forget(key string) { s.cache.Drop(key) }

// ForgetAll drops every in-memory copy.
func (s *TokenStore) ForgetAll() { s.cache.Clear() }

// Cached is how many tokens are held in memory.
func (s *TokenStore) Cached() int { return s.cache.Len() }
