package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// KV is the durable storage behind the token store: Vault's barrier
// storage in the plugin, a map in tests.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// List names the keys just below prefix (a name ending in "/" holds
	// more), as Vault's storage does.
	List(ctx context.Context, prefix string) ([]string, error)
}

// TokenPrefix is where tokens live in storage.
const TokenPrefix = "tokens/"

// Holding periods: how long a reader may rely on a token it was handed.
const (
	// HoldSkew is taken off a token's remaining life, so that a holder stops
	// relying on it a little before it ends (network and clock drift).
	HoldSkew = time.Second
	// MinHold is the shortest holding period handed out.
	MinHold = time.Second
	// maxMintWait bounds how long a mint waits for the current token's
	// holders: the horizon is never more than HoldSkew+MinHold away when
	// a read may not be served any more.
	maxMintWait = HoldSkew + MinHold + time.Second
)

// StoredToken is a token with the fingerprint of the request that minted it:
// a token minted for another client, operator or scope set is not reused.
type StoredToken struct {
	Token
	Fingerprint string `json:"fingerprint"`
	// MintAfter (single-active tokens): no new token is minted before it,
	// and no holder is told to rely on this one past MintAfter-HoldSkew, so
	// every holding period has ended when the new token kills this one.
	// Zero means the token's expiry.
	MintAfter time.Time `json:"mint_after,omitzero"`
	// Unusable is set, durably, before a request that will invalidate the
	// token is sent: whatever becomes of the request, the token is never
	// handed out again. Its refresh token may still serve.
	Unusable bool `json:"unusable,omitempty"`
	// ReuseUntil (Want.ReuseUntil, ReuseFor): no reader is handed the token
	// at or after it.
	ReuseUntil time.Time `json:"reuse_until,omitzero"`
	// LastRead is when a reader was last handed the token, kept to within
	// the granularity of Touch (zero: not since ObtainedAt).
	LastRead time.Time `json:"last_read,omitzero"`
}

// ReadAt is when the token was last handed out, or obtained.
func (t *StoredToken) ReadAt() time.Time { return later(t.LastRead, t.ObtainedAt) }

// mintAfter is MintAfter, or the expiry for tokens stored without one.
func (t *StoredToken) mintAfter() time.Time {
	if t.MintAfter.IsZero() {
		return t.Expiry
	}
	return t.MintAfter
}

// Fetch obtains a new token; current is the stale one, if any (its refresh
// token may serve).
type Fetch func(ctx context.Context, current *StoredToken) (*Token, error)

// Want is what a reader asks of the store.
type Want struct {
	Key         string
	Fingerprint string
	// MinRemaining is the life a token must have left to be handed out when
	// it is more than the token's Margin (capped at half its lifetime, so
	// that no setting makes every read mint). Ignored for SingleActive
	// tokens, whose Reserve rules instead.
	MinRemaining time.Duration
	// SingleActive: the IdP kills a client's current token when it issues a
	// new one. Such a token is handed out only with a holding period that
	// ends before the next mint may happen, and is marked Unusable before
	// any request that would kill it.
	SingleActive bool
	// Reserve (SingleActive), asked only before a mint: the life a new
	// token keeps when the next one may be minted (MintAfter = Expiry -
	// min(reserve, lifetime/2)). Nil is none: the next mint at expiry.
	Reserve func(ctx context.Context) (time.Duration, error)
	// CanMint, when set, is asked before anything changes for a mint: a
	// node whose storage is read-only answers an error.
	CanMint func() error
	Fetch   Fetch
	// Began is the store's Epoch when the caller began, before it read the
	// role and config the request is for: whatever it fetches for a key
	// dropped after that is discarded (DroppedError). Zero: when the
	// store's flight starts.
	Began uint64
	// Login: Fetch is a login's token request (a code exchange, a device
	// poll) whose token replaces whatever the key holds. It runs in the
	// key's lane like a mint, with the same holds and retirement, but no
	// held token is served instead.
	Login bool
	// Ephemeral: the token is held in memory only, bounded in number, and
	// never written to storage (exchanges of the subject tokens callers
	// bring: another party's token).
	Ephemeral bool
	// Bounded: a key of a family that may hold very many tokens (one per
	// person): stored as any other, but held in memory by a bounded cache
	// (least recently used first out), storage holding the rest.
	Bounded bool
	// ReuseUntil, when set, is when a token fetched now stops being handed
	// out again (the subject token's own expiry); else ReuseFor after it is
	// fetched, when set. The token itself may live longer.
	ReuseUntil time.Time
	ReuseFor   time.Duration
}

// Served is a token handed out and how long its reader may rely on it.
type Served struct {
	*StoredToken
	// Hold is the longest a lease on the token may run from now.
	Hold time.Duration
	// RotatesIn is how long from now a read like this one is still handed
	// the token: a read RotatesIn plus a second from now is handed the next
	// one (see rotatesIn). May be below a second.
	RotatesIn time.Duration
	// Fresh says the token was just fetched.
	Fresh bool
}

// ErrRefreshDead is wrapped by a Fetch error when the IdP refused the
// current refresh token for good: the store forgets it, so that no later
// read sends it again.
var ErrRefreshDead = errors.New("the refresh token was refused")

// DroppedError: the token key was dropped (a drop, a role or config delete)
// after the request began. Nothing of it was kept; Token is what it
// fetched, for the caller to revoke (nil when it fetched nothing).
type DroppedError struct{ Token *StoredToken }

func (e *DroppedError) Error() string {
	return "the token was dropped while a new one was being fetched"
}

// HeldError: the key's token is held by readers until Until (its holding
// period), and the request would kill it at the IdP (single-active).
type HeldError struct {
	Key   string
	Until time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("token %q is held under leases until %s: a new token may not be minted before then", e.Key, e.Until.UTC().Format(time.RFC3339))
}

// TokenStore hands out cached tokens while they are fresh enough and fetches
// a new one at most once at a time per key, however many readers ask. It is
// the one door of every token write: reads that mint or refresh, logins,
// exchanges and drops all go through Serve and Drop, so that one set of
// rules (one IdP request at a time per key, drop generations, holds and
// retirement) applies to all.
type TokenStore struct {
	cache     Cache[*StoredToken]
	bounded   Cache[*StoredToken] // Want.Bounded keys
	boundOnce sync.Once
	ephemeral lru
	lanes     lanes
	flight    singleflight.Group
	Now       func() time.Time
	// Sleep waits d or until ctx ends (tests move a fake clock instead).
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxEphemeral bounds the memory-only tokens (DefaultEphemeralTokens
	// when zero).
	MaxEphemeral int
	// MaxBounded bounds the memory copies of Bounded keys
	// (DefaultBoundedTokens when zero); set before first use.
	MaxBounded int

	drops drops
}

func (s *TokenStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *TokenStore) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	return Sleep(ctx, d)
}

// Get is Serve for a token that other tokens of the client do not kill.
func (s *TokenStore) Get(ctx context.Context, kv KV, key, fingerprint string, minRemaining time.Duration, fetch Fetch) (*StoredToken, bool, error) {
	got, err := s.Serve(ctx, kv, Want{Key: key, Fingerprint: fingerprint, MinRemaining: minRemaining, Fetch: fetch})
	return got.StoredToken, got.Fresh, err
}

// maxJoins bounds how often a reader joins a flight whose result does not
// fit it (another reader's fingerprint or need) before giving up.
const maxJoins = 3

// Serve returns a token for w.Key that matches w.Fingerprint and is fresh
// enough, fetching one when there is none. One fetch at a time per key:
// concurrent readers join it, and a reader the result does not fit asks
// again, so that no two requests for one key ever overlap.
func (s *TokenStore) Serve(ctx context.Context, kv KV, w Want) (Served, error) {
	// The IdP request carries its own time bounds, and a caller that gives
	// up must not leave half a retirement or an unstored token behind.
	flightCtx := context.WithoutCancel(ctx)
	if w.Login {
		// A login's request is its own: nobody joins it, and it joins no
		// read's flight.
		return s.serveOrMint(flightCtx, kv, w)
	}
	if t, ok := s.inMemory(w); ok {
		if got, ok := s.hold(t, w, s.now()); ok {
			return got, nil
		}
	}
	// Readers that join a flight share its result.
	for range maxJoins {
		v, err, _ := s.flight.Do(w.Key, func() (any, error) { return s.serveOrMint(flightCtx, kv, w) })
		if err != nil {
			return Served{}, err
		}
		got := v.(Served)
		if got.Fingerprint != w.Fingerprint {
			continue
		}
		if got.Fresh {
			// Just fetched for this reader or another: its own rotation.
			got.RotatesIn = rotatesIn(got.StoredToken, w, s.now())
			return got, nil
		}
		if got, ok := s.hold(got.StoredToken, w, s.now()); ok {
			return got, nil
		}
	}
	return Served{}, fmt.Errorf("token %q: other readers kept replacing it; try again", w.Key)
}

// serveOrMint runs in the key's lane (inside a read's flight): one IdP
// request at a time per key, whatever door it came in by.
func (s *TokenStore) serveOrMint(ctx context.Context, kv KV, w Want) (Served, error) {
	unlock := s.lanes.lock(w.Key)
	defer unlock()
	began := w.Began
	if began == 0 {
		began = s.Epoch()
	}
	if s.drops.since(w.Key, began) {
		// The caller's view of the role is older than a drop: let it look
		// again rather than write for what was dropped.
		return Served{}, &DroppedError{}
	}
	current, err := s.load(ctx, kv, w)
	if err != nil {
		return Served{}, err
	}
	if !w.Login {
		if got, ok := s.hold(current, w, s.now()); ok {
			return got, nil
		}
	}
	if w.CanMint != nil {
		if err := w.CanMint(); err != nil {
			return Served{}, err
		}
	}
	var reserve time.Duration
	if w.Reserve != nil {
		if reserve, err = w.Reserve(ctx); err != nil {
			return Served{}, err
		}
	}
	if w.SingleActive && current != nil && !current.Unusable {
		if current, err = s.retire(ctx, kv, w, current); err != nil {
			return Served{}, err
		}
	}
	got, err := s.mint(ctx, kv, w, current, reserve)
	if s.drops.since(w.Key, began) {
		// Dropped meanwhile: what was stored since belongs to nobody.
		s.forget(w)
		if !w.Ephemeral {
			if derr := kv.Delete(ctx, TokenPrefix+w.Key); derr != nil && err == nil {
				err = derr
			}
		}
		if err == nil {
			return Served{}, &DroppedError{Token: got.StoredToken}
		}
	}
	return got, err
}

// retire waits until no holder relies on current any more, then marks it
// Unusable in storage and memory, before the request that will kill it, and
// returns the marked record: from here on nothing writes current back as
// usable. A token minted for another request (an operator changed the
// config or the role) is retired at once: that change is the operator's to
// announce.
func (s *TokenStore) retire(ctx context.Context, kv KV, w Want, current *StoredToken) (*StoredToken, error) {
	if wait := current.mintAfter().Sub(s.now()); wait > 0 && current.Fingerprint == w.Fingerprint {
		if wait > maxMintWait {
			return nil, &HeldError{Key: w.Key, Until: current.mintAfter()}
		}
		if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	marked := *current
	marked.Unusable = true
	return &marked, s.put(ctx, kv, w, &marked)
}

// mint fetches and stores a new token for w. current is the key's record as
// it stands now (marked Unusable if it was retired).
func (s *TokenStore) mint(ctx context.Context, kv KV, w Want, current *StoredToken, reserve time.Duration) (Served, error) {
	forFetch := current
	if w.Login || (current != nil && current.Fingerprint != w.Fingerprint) {
		forFetch = nil // a refresh token of another request must not serve
	}
	t, err := w.Fetch(ctx, forFetch)
	if err != nil {
		if errors.Is(err, ErrRefreshDead) && forFetch != nil && forFetch.RefreshToken != "" {
			// The record as retired: a fallback grant whose answer was
			// lost may have killed the token, so Unusable stays.
			dead := *forFetch
			dead.RefreshToken = ""
			if perr := s.put(ctx, kv, w, &dead); perr != nil {
				return Served{}, errors.Join(err, perr)
			}
		}
		return Served{}, err
	}
	stored := &StoredToken{Token: *t, Fingerprint: w.Fingerprint}
	switch {
	case !w.ReuseUntil.IsZero():
		stored.ReuseUntil = w.ReuseUntil
	case w.ReuseFor > 0:
		stored.ReuseUntil = s.now().Add(w.ReuseFor)
	}
	now := s.now()
	hold := stored.Remaining(now) - HoldSkew
	if w.SingleActive {
		// The holding period of every lease on this token ends by
		// MintAfter-HoldSkew: by the time a read may mint, none is live.
		// The shortest lease is MinHold: when the token is too short-lived
		// (or its answer too slow) for that, the next mint waits for it.
		lifetime := stored.Expiry.Sub(stored.ObtainedAt)
		stored.MintAfter = later(stored.Expiry.Add(-min(reserve, lifetime/2)), now.Add(MinHold+HoldSkew))
		hold = stored.MintAfter.Sub(now) - HoldSkew
	}
	if err := s.put(ctx, kv, w, stored); err != nil {
		return Served{}, err
	}
	return Served{StoredToken: stored, Hold: max(hold, MinHold), RotatesIn: rotatesIn(stored, w, now), Fresh: true}, nil
}

// hold says whether t may be handed out for w at now, and for how long:
// the one rule of the cache. A token of a client whose tokens do not kill
// each other is handed out until handOutUntil (while it has its margin, or
// the reader's MinRemaining, left); a SingleActive one while its holding
// period is at least MinHold (no reader's min_ttl applies).
func (s *TokenStore) hold(t *StoredToken, w Want, now time.Time) (Served, bool) {
	if w.SingleActive {
		hold, ok := s.HoldOf(t, w, now)
		if !ok {
			return Served{}, false
		}
		return Served{StoredToken: t, Hold: hold, RotatesIn: rotatesIn(t, w, now)}, true
	}
	if t == nil || t.Unusable || t.Fingerprint != w.Fingerprint || t.gone(now) || now.After(handOutUntil(t, w)) {
		return Served{}, false
	}
	return Served{StoredToken: t, Hold: max(t.Remaining(now)-HoldSkew, MinHold), RotatesIn: rotatesIn(t, w, now)}, true
}

// Peek returns the cached or stored token without fetching, and without
// caching what it read.
func (s *TokenStore) Peek(ctx context.Context, kv KV, key string) (*StoredToken, error) {
	if t, ok := s.InMemory(key); ok {
		return t, nil
	}
	raw, err := kv.Get(ctx, TokenPrefix+key)
	if err != nil || raw == nil {
		return nil, err
	}
	var t StoredToken
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("stored token %q is unreadable: %w", key, err)
	}
	return &t, nil
}

// DefaultBoundedTokens bounds the memory copies of Bounded keys of a
// TokenStore whose MaxBounded is zero.
const DefaultBoundedTokens = 10000

// memory is the cache that holds w's key: stored keys of a family that may
// be very large go to the bounded one.
func (s *TokenStore) memory(w Want) *Cache[*StoredToken] {
	if w.Bounded {
		s.boundOnce.Do(func() {
			n := s.MaxBounded
			if n <= 0 {
				n = DefaultBoundedTokens
			}
			s.bounded.SetBound(n)
		})
		return &s.bounded
	}
	return &s.cache
}

// inMemory is the copy of w's key held in memory, if any.
func (s *TokenStore) inMemory(w Want) (*StoredToken, bool) {
	if w.Ephemeral {
		return s.ephemeral.get(w.Key, s.now())
	}
	return s.memory(w).Get(w.Key)
}

func (s *TokenStore) forget(w Want) {
	if w.Ephemeral {
		s.ephemeral.drop(w.Key)
		return
	}
	s.memory(w).Drop(w.Key)
}

func (s *TokenStore) load(ctx context.Context, kv KV, w Want) (*StoredToken, error) {
	if w.Ephemeral {
		t, _ := s.ephemeral.get(w.Key, s.now())
		return t, nil
	}
	key := w.Key
	t, _, err := s.memory(w).Load(key, func() (*StoredToken, bool, error) {
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

func (s *TokenStore) put(ctx context.Context, kv KV, w Want, t *StoredToken) error {
	if w.Ephemeral {
		s.ephemeral.set(w.Key, t, s.MaxEphemeral, s.now())
		return nil
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := kv.Put(ctx, TokenPrefix+w.Key, raw); err != nil {
		return err
	}
	s.memory(w).Set(w.Key, t)
	return nil
}

// Forget drops the in-memory copy only (another node changed storage).
func (s *TokenStore) Forget(key string) {
	s.cache.Drop(key)
	s.bounded.Drop(key)
}

// ForgetAll drops every in-memory copy, memory-only tokens included.
func (s *TokenStore) ForgetAll() {
	s.cache.Clear()
	s.bounded.Clear()
	s.ephemeral.clear()
}

// InMemory is the copy of key's token held in memory, if any: what a read
// would serve without asking storage.
func (s *TokenStore) InMemory(key string) (*StoredToken, bool) {
	if t, ok := s.cache.Get(key); ok {
		return t, ok
	}
	return s.bounded.Get(key)
}

// Cached is how many stored tokens are held in memory.
func (s *TokenStore) Cached() int { return s.cache.Len() + s.bounded.Len() }

// Ephemeral is how many memory-only tokens are held.
func (s *TokenStore) Ephemeral() int { return s.ephemeral.len() }

// RefreshDead marks err as the end of the current refresh token: the store
// forgets it (see ErrRefreshDead). The message is err's.
func RefreshDead(err error) error { return refreshDeadError{err} }

type refreshDeadError struct{ err error }

func (e refreshDeadError) Error() string   { return e.err.Error() }
func (e refreshDeadError) Unwrap() []error { return []error{e.err, ErrRefreshDead} }

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
