package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
)

// TokenStore over an in-memory KV that counts its calls.

type memKV struct {
	mu                  sync.Mutex
	m                   map[string][]byte
	gets, puts, deletes int
	getErr, putErr      error
}

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (k *memKV) Get(ctx context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.gets++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k.getErr != nil {
		return nil, k.getErr
	}
	v, ok := k.m[key]
	if !ok {
		return nil, nil
	}
	return append([]byte(nil), v...), nil
}

func (k *memKV) Put(ctx context.Context, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.puts++
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.putErr != nil {
		return k.putErr
	}
	k.m[key] = append([]byte(nil), value...)
	return nil
}

func (k *memKV) Delete(ctx context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deletes++
	delete(k.m, key)
	return ctx.Err()
}

func (k *memKV) List(ctx context.Context, prefix string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for key := range k.m {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if !seen[rest] {
			seen[rest] = true
			out = append(out, rest)
		}
	}
	slices.Sort(out)
	return out, ctx.Err()
}

// calls returns and resets the counters.
func (k *memKV) calls() (gets, puts, deletes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	gets, puts, deletes = k.gets, k.puts, k.deletes
	k.gets, k.puts, k.deletes = 0, 0, 0
	return
}

func (k *memKV) stored(t *testing.T, key string) *StoredToken {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	raw, ok := k.m[TokenPrefix+key]
	if !ok {
		return nil
	}
	var st StoredToken
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("stored %q: %v", key, err)
	}
	return &st
}

var storeT0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// fetcher issues tokens "AT-1", "AT-2", ... valid for ttl from the clock's
// now, each with a refresh token, and records what it was given.
type fetcher struct {
	mu       sync.Mutex
	clock    *fakeclock.Clock
	ttl      time.Duration
	delay    time.Duration
	err      error
	n        int
	currents []*StoredToken
}

func (f *fetcher) fetch(ctx context.Context, current *StoredToken) (*Token, error) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.currents = append(f.currents, current)
	if f.err != nil {
		return nil, f.err
	}
	now := f.clock.Now()
	return &Token{
		AccessToken: fmt.Sprintf("AT-%d", f.n), TokenType: "Bearer", RefreshToken: fmt.Sprintf("RT-%d", f.n),
		ObtainedAt: now, Expiry: now.Add(f.ttl),
	}, nil
}

func (f *fetcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fetcher) lastCurrent() *StoredToken {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.currents[len(f.currents)-1]
}

func newStoreFixture() (*TokenStore, *memKV, *fakeclock.Clock, *fetcher) {
	clock := fakeclock.New(storeT0)
	return &TokenStore{Now: clock.Now}, newMemKV(), clock, &fetcher{clock: clock, ttl: time.Hour}
}

func TestTokenStoreColdThenWarm(t *testing.T) {
	ctx := context.Background()
	s, kv, _, f := newStoreFixture()

	tok, fresh, err := s.Get(ctx, kv, "role-a", "fp1", 5*time.Minute, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !fresh || tok.AccessToken != "AT-1" || tok.Fingerprint != "fp1" || f.count() != 1 {
		t.Fatalf("cold Get = %+v fresh %v after %d fetches; want AT-1, fresh, one fetch", tok, fresh, f.count())
	}
	if f.lastCurrent() != nil {
		t.Errorf("cold fetch got current %+v, want nil", f.lastCurrent())
	}
	st := kv.stored(t, "role-a")
	if st == nil || st.AccessToken != "AT-1" || st.Fingerprint != "fp1" || st.RefreshToken != "RT-1" || !st.Expiry.Equal(storeT0.Add(time.Hour)) {
		t.Fatalf("stored under %q: %+v", TokenPrefix+"role-a", st)
	}
	if gets, puts, _ := kv.calls(); gets != 1 || puts != 1 {
		t.Errorf("cold Get: %d KV gets, %d puts; want 1 and 1", gets, puts)
	}

	for i := 0; i < 3; i++ {
		tok, fresh, err = s.Get(ctx, kv, "role-a", "fp1", 5*time.Minute, f.fetch)
		if err != nil || fresh || tok.AccessToken != "AT-1" {
			t.Fatalf("warm Get = %+v, %v, %v", tok, fresh, err)
		}
	}
	if gets, puts, dels := kv.calls(); gets+puts+dels != 0 {
		t.Errorf("warm Get touched storage: %d gets, %d puts, %d deletes", gets, puts, dels)
	}
	if f.count() != 1 {
		t.Errorf("warm Get fetched: %d fetches", f.count())
	}
	if s.Cached() != 1 {
		t.Errorf("Cached() = %d, want 1", s.Cached())
	}
}

func TestTokenStoreKeysAreSeparate(t *testing.T) {
	ctx := context.Background()
	s, kv, _, f := newStoreFixture()
	a, _, _ := s.Get(ctx, kv, "a", "fp", 0, f.fetch)
	b, _, _ := s.Get(ctx, kv, "b", "fp", 0, f.fetch)
	if a.AccessToken == b.AccessToken || f.count() != 2 {
		t.Errorf("keys a and b got %q and %q after %d fetches", a.AccessToken, b.AccessToken, f.count())
	}
	if kv.stored(t, "a").AccessToken != "AT-1" || kv.stored(t, "b").AccessToken != "AT-2" {
		t.Error("tokens not stored under their own keys")
	}
}

func TestTokenStoreConcurrentColdGets(t *testing.T) {
	ctx := context.Background()
	s, kv, _, f := newStoreFixture()
	f.delay = 50 * time.Millisecond
	const n = 100
	var wg sync.WaitGroup
	start := make(chan struct{})
	tokens := make([]string, n)
	errs := make([]error, n)
	var freshCount atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tok, fresh, err := s.Get(ctx, kv, "shared", "fp", time.Minute, f.fetch)
			errs[i] = err
			if err == nil {
				tokens[i] = tok.AccessToken
				if fresh {
					freshCount.Add(1)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if f.count() != 1 {
		t.Errorf("%d fetches for %d concurrent cold Gets, want 1", f.count(), n)
	}
	for i := range tokens {
		if errs[i] != nil || tokens[i] != "AT-1" {
			t.Fatalf("reader %d: %q, %v", i, tokens[i], errs[i])
		}
	}
	if _, puts, _ := kv.calls(); puts != 1 {
		t.Errorf("%d KV puts, want 1", puts)
	}
	if freshCount.Load() < 1 {
		t.Error("no reader was told the token is fresh")
	}
}

func TestTokenStoreRefetch(t *testing.T) {
	tests := []struct {
		name         string
		fingerprint  string        // of the second Get; the first uses "fp1"
		after        time.Duration // clock advance before the second Get
		minRemaining time.Duration
		wantFetch    bool
		wantCurrent  bool // the stale token is handed to fetch
	}{
		{"fresh enough", "fp1", 30 * time.Minute, 15 * time.Minute, false, false},
		{"exactly minRemaining left", "fp1", 45 * time.Minute, 15 * time.Minute, false, false},
		{"below minRemaining", "fp1", 50 * time.Minute, 15 * time.Minute, true, true},
		{"expired", "fp1", 2 * time.Hour, 0, true, true},
		{"expiring now, minRemaining 0", "fp1", time.Hour, 0, true, true},
		{"fingerprint changed", "fp2", 0, 0, true, false},
		{"fingerprint changed and stale", "fp2", 50 * time.Minute, 15 * time.Minute, true, false},
		// minRemaining is capped at half the one-hour lifetime.
		{"minRemaining 2h, 40m left", "fp1", 20 * time.Minute, 2 * time.Hour, false, false},
		{"minRemaining 2h, 30m left", "fp1", 30 * time.Minute, 2 * time.Hour, false, false},
		{"minRemaining 2h, 29m left", "fp1", 31 * time.Minute, 2 * time.Hour, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, kv, clock, f := newStoreFixture()
			if _, _, err := s.Get(ctx, kv, "k", "fp1", 0, f.fetch); err != nil {
				t.Fatal(err)
			}
			clock.Set(storeT0.Add(tc.after))
			tok, fresh, err := s.Get(ctx, kv, "k", tc.fingerprint, tc.minRemaining, f.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if fetched := f.count() == 2; fetched != tc.wantFetch || fresh != tc.wantFetch {
				t.Fatalf("fetched %v fresh %v, want %v", fetched, fresh, tc.wantFetch)
			}
			if tok.Fingerprint != tc.fingerprint {
				t.Errorf("Fingerprint = %q, want %q", tok.Fingerprint, tc.fingerprint)
			}
			if !tc.wantFetch {
				if tok.AccessToken != "AT-1" {
					t.Errorf("AccessToken %q, want the cached AT-1", tok.AccessToken)
				}
				return
			}
			if tok.AccessToken != "AT-2" {
				t.Errorf("AccessToken %q, want AT-2", tok.AccessToken)
			}
			cur := f.lastCurrent()
			switch {
			case tc.wantCurrent && (cur == nil || cur.RefreshToken != "RT-1" || cur.AccessToken != "AT-1"):
				t.Errorf("fetch got current %+v, want the stale AT-1 with its refresh token", cur)
			case !tc.wantCurrent && cur != nil:
				t.Errorf("fetch got current %+v, want nil (another request's refresh token must not serve)", cur)
			}
			if st := kv.stored(t, "k"); st.AccessToken != "AT-2" || st.Fingerprint != tc.fingerprint {
				t.Errorf("stored %+v, want AT-2 with %q", st, tc.fingerprint)
			}
		})
	}
}

// After a restart or a failover the in-memory copy is gone: the token is
// read back from storage, not minted again.
func TestTokenStoreReloadsFromStorage(t *testing.T) {
	ctx := context.Background()
	s, kv, clock, f := newStoreFixture()
	if _, _, err := s.Get(ctx, kv, "k", "fp", time.Minute, f.fetch); err != nil {
		t.Fatal(err)
	}
	kv.calls()

	s.Forget("k")
	if s.Cached() != 0 {
		t.Errorf("Cached() = %d after Forget", s.Cached())
	}
	tok, fresh, err := s.Get(ctx, kv, "k", "fp", time.Minute, f.fetch)
	if err != nil || fresh || tok.AccessToken != "AT-1" {
		t.Fatalf("Get after Forget = %+v, %v, %v; want the stored AT-1", tok, fresh, err)
	}
	if gets, puts, _ := kv.calls(); gets != 1 || puts != 0 {
		t.Errorf("Get after Forget: %d gets, %d puts; want 1 and 0", gets, puts)
	}

	restarted := &TokenStore{Now: clock.Now}
	tok, fresh, err = restarted.Get(ctx, kv, "k", "fp", time.Minute, f.fetch)
	if err != nil || fresh || tok.AccessToken != "AT-1" {
		t.Fatalf("Get on a new store = %+v, %v, %v; want the stored AT-1", tok, fresh, err)
	}
	if f.count() != 1 {
		t.Errorf("%d fetches, want 1", f.count())
	}

	// Another node stored a newer token: after Forget (Vault's Invalidate)
	// this node serves it.
	other := &TokenStore{Now: clock.Now}
	clock.Set(storeT0.Add(59 * time.Minute))
	if tok, _, _ := other.Get(ctx, kv, "k", "fp", 5*time.Minute, f.fetch); tok.AccessToken != "AT-2" {
		t.Fatalf("other node got %q, want AT-2", tok.AccessToken)
	}
	clock.Set(storeT0.Add(30 * time.Minute))
	restarted.Forget("k")
	if tok, _, _ := restarted.Get(ctx, kv, "k", "fp", 0, f.fetch); tok.AccessToken != "AT-2" {
		t.Errorf("after Forget, got %q, want the other node's AT-2", tok.AccessToken)
	}
	restarted.ForgetAll()
	if restarted.Cached() != 0 {
		t.Errorf("Cached() = %d after ForgetAll", restarted.Cached())
	}
}

func TestTokenStoreDrop(t *testing.T) {
	ctx := context.Background()
	s, kv, _, f := newStoreFixture()
	if _, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, kv, "k"); err != nil {
		t.Fatal(err)
	}
	if st := kv.stored(t, "k"); st != nil {
		t.Errorf("still stored after Drop: %+v", st)
	}
	if s.Cached() != 0 {
		t.Errorf("Cached() = %d after Drop", s.Cached())
	}
	if p, err := s.Peek(ctx, kv, "k"); err != nil || p != nil {
		t.Errorf("Peek after Drop = %+v, %v", p, err)
	}
	tok, fresh, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch)
	if err != nil || !fresh || tok.AccessToken != "AT-2" {
		t.Errorf("Get after Drop = %+v, %v, %v; want a new AT-2", tok, fresh, err)
	}
	if cur := f.lastCurrent(); cur != nil {
		t.Errorf("fetch after Drop got current %+v, want nil", cur)
	}
}

func TestTokenStorePeek(t *testing.T) {
	ctx := context.Background()
	s, kv, _, f := newStoreFixture()
	if p, err := s.Peek(ctx, kv, "k"); err != nil || p != nil {
		t.Fatalf("Peek on empty = %+v, %v", p, err)
	}
	s.Get(ctx, kv, "k", "fp", 0, f.fetch)
	restarted := &TokenStore{}
	p, err := restarted.Peek(ctx, kv, "k")
	if err != nil || p == nil || p.AccessToken != "AT-1" {
		t.Errorf("Peek = %+v, %v", p, err)
	}
	if f.count() != 1 {
		t.Errorf("Peek fetched")
	}
}

func TestTokenStoreErrors(t *testing.T) {
	ctx := context.Background()
	idpErr := &IdPError{Config: "c", Status: 400, Code: "invalid_client"}
	t.Run("fetch error", func(t *testing.T) {
		s, kv, _, f := newStoreFixture()
		f.err = idpErr
		tok, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch)
		if !errors.Is(err, idpErr) || tok != nil {
			t.Fatalf("Get = %+v, %v; want the fetch's error", tok, err)
		}
		if _, puts, _ := kv.calls(); puts != 0 {
			t.Errorf("%d KV puts after a failed fetch", puts)
		}
		if kv.stored(t, "k") != nil || s.Cached() != 0 {
			t.Error("something was kept after a failed fetch")
		}
		f.err = nil
		if tok, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch); err != nil || tok.AccessToken != "AT-2" || f.count() != 2 {
			t.Errorf("Get after the IdP recovered = %+v, %v (%d fetches)", tok, err, f.count())
		}
	})
	t.Run("fetch error keeps the stale token stored", func(t *testing.T) {
		s, kv, clock, f := newStoreFixture()
		s.Get(ctx, kv, "k", "fp", 0, f.fetch)
		clock.Set(storeT0.Add(2 * time.Hour))
		f.err = idpErr
		if _, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch); !errors.Is(err, idpErr) {
			t.Fatalf("Get = %v", err)
		}
		if st := kv.stored(t, "k"); st == nil || st.AccessToken != "AT-1" {
			t.Errorf("stored %+v, want the old AT-1 untouched", st)
		}
	})
	t.Run("storage put error", func(t *testing.T) {
		s, kv, _, f := newStoreFixture()
		kv.putErr = errors.New("barrier sealed")
		tok, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch)
		if err == nil || !strings.Contains(err.Error(), "barrier sealed") || tok != nil {
			t.Fatalf("Get = %+v, %v; want the storage error", tok, err)
		}
		if s.Cached() != 0 {
			t.Error("a token that could not be stored is cached")
		}
	})
	t.Run("storage get error", func(t *testing.T) {
		s, kv, _, f := newStoreFixture()
		kv.getErr = errors.New("storage unavailable")
		_, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch)
		if err == nil || !strings.Contains(err.Error(), "storage unavailable") {
			t.Fatalf("Get = %v; want the storage error", err)
		}
		if f.count() != 0 {
			t.Error("fetched although storage could not be read")
		}
	})
	t.Run("unreadable stored token", func(t *testing.T) {
		s, kv, _, f := newStoreFixture()
		kv.m[TokenPrefix+"k"] = []byte(`{"access_token":"AT-0",`)
		_, _, err := s.Get(ctx, kv, "k", "fp", 0, f.fetch)
		if err == nil || !strings.Contains(err.Error(), `"k"`) {
			t.Fatalf("Get = %v; want an error naming the key", err)
		}
		if strings.Contains(err.Error(), "AT-0") {
			t.Errorf("error %q quotes the stored token", err)
		}
	})
}

// A reader whose request is cancelled must not fail the readers that joined
// its fetch, nor the fetch itself.
func TestTokenStoreLeaderCancelled(t *testing.T) {
	s, kv, _, _ := newStoreFixture()
	release := make(chan struct{})
	started := make(chan struct{})
	var fetches atomic.Int32
	fetch := func(ctx context.Context, _ *StoredToken) (*Token, error) {
		if fetches.Add(1) == 1 {
			close(started)
		}
		<-release
		if err := ctx.Err(); err != nil {
			return nil, err // as an HTTP request under that context would
		}
		return &Token{AccessToken: "AT-1", ObtainedAt: storeT0, Expiry: storeT0.Add(time.Hour)}, nil
	}
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		_, _, err := s.Get(leaderCtx, kv, "k", "fp", 0, fetch)
		leaderDone <- err
	}()
	<-started
	const joiners = 5
	results := make(chan error, joiners)
	for i := 0; i < joiners; i++ {
		go func() {
			tok, _, err := s.Get(context.Background(), kv, "k", "fp", 0, fetch)
			if err == nil && tok.AccessToken != "AT-1" {
				err = fmt.Errorf("got %q", tok.AccessToken)
			}
			results <- err
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the joiners reach the flight
	cancel()
	close(release)
	for i := 0; i < joiners; i++ {
		if err := <-results; err != nil {
			t.Errorf("joined reader: %v", err)
		}
	}
	<-leaderDone
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if st := kv.stored(t, "k"); st == nil || st.AccessToken != "AT-1" {
		t.Errorf("stored %+v, want AT-1 although the first reader gave up", st)
	}
}

// A reader that asks with another fingerprint while a fetch for the old one
// is in flight (the config changed meanwhile) must get a token minted for
// its own fingerprint.
func TestTokenStoreJoinWithOtherFingerprint(t *testing.T) {
	s, kv, clock, f := newStoreFixture()
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	slow := func(ctx context.Context, cur *StoredToken) (*Token, error) {
		once.Do(func() { close(started) })
		<-release
		return f.fetch(ctx, cur)
	}
	_ = clock
	oldDone := make(chan *StoredToken, 1)
	go func() {
		tok, _, _ := s.Get(context.Background(), kv, "k", "old", 0, slow)
		oldDone <- tok
	}()
	<-started
	newDone := make(chan *StoredToken, 1)
	go func() {
		tok, _, err := s.Get(context.Background(), kv, "k", "new", 0, slow)
		if err != nil {
			t.Error(err)
		}
		newDone <- tok
	}()
	time.Sleep(50 * time.Millisecond) // let the second reader reach the flight
	close(release)
	if tok := <-oldDone; tok == nil || tok.Fingerprint != "old" {
		t.Errorf("first reader got %+v", tok)
	}
	if tok := <-newDone; tok == nil || tok.Fingerprint != "new" {
		t.Errorf("reader with fingerprint %q got a token minted for %q", "new", tok.Fingerprint)
	}
}

// singleActiveFixture is a store whose waits move the fake clock.
func singleActiveFixture(ttl time.Duration) (*TokenStore, *memKV, *fakeclock.Clock, *fetcher) {
	s, kv, clock, f := newStoreFixture()
	f.ttl = ttl
	s.Sleep = func(ctx context.Context, d time.Duration) error { clock.Set(clock.Now().Add(d)); return ctx.Err() }
	return s, kv, clock, f
}

func singleActiveWant(f *fetcher, reserve time.Duration) Want {
	return Want{Key: "config/mt", Fingerprint: "fp", SingleActive: true, Fetch: f.fetch,
		Reserve: func(context.Context) (time.Duration, error) { return reserve, nil }}
}

// A single-active token is handed out with holding periods that all end
// before the next mint, whatever min_ttl asks: the mint waits for them.
func TestStoreSingleActiveHoldEndsBeforeMint(t *testing.T) {
	s, kv, clock, f := singleActiveFixture(20 * time.Second)
	w := singleActiveWant(f, 8*time.Second)
	var holdsEnd []time.Time
	for _, at := range []time.Duration{0, 5 * time.Second, 10500 * time.Millisecond, 11500 * time.Millisecond} {
		clock.Set(storeT0.Add(at))
		got, err := s.Serve(context.Background(), kv, w)
		if err != nil {
			t.Fatal(err)
		}
		if f.count() > 1 {
			// The mint: every earlier holding period must have ended.
			for _, end := range holdsEnd {
				if mintAt := got.ObtainedAt; mintAt.Before(end) {
					t.Fatalf("minted at +%s while a holder may rely on the old token until +%s", mintAt.Sub(storeT0), end.Sub(storeT0))
				}
			}
			return
		}
		holdsEnd = append(holdsEnd, clock.Now().Add(got.Hold))
		if want := storeT0.Add(20*time.Second - 8*time.Second - HoldSkew); clock.Now().Add(got.Hold).After(want) {
			t.Fatalf("at +%s the hold ends +%s, after the horizon +%s", at, clock.Now().Add(got.Hold).Sub(storeT0), want.Sub(storeT0))
		}
	}
	t.Fatalf("no new token was minted near the horizon (fetches: %d)", f.count())
}

// Before a request that kills the current token is sent, the token is
// marked unusable in storage: when the answer is lost, no node serves it
// again, not even one whose clock reads a few seconds earlier.
func TestStoreRetiredTokenNeverServedAgain(t *testing.T) {
	s, kv, clock, f := singleActiveFixture(time.Minute)
	w := singleActiveWant(f, 0)
	first, err := s.Serve(context.Background(), kv, w)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(storeT0.Add(59 * time.Second))
	lost := errors.New("502 from a gateway after the IdP minted")
	f.err = lost
	if _, err := s.Serve(context.Background(), kv, w); !errors.Is(err, lost) {
		t.Fatalf("Serve = %v, want the lost answer's error", err)
	}
	if st := kv.stored(t, "config/mt"); st == nil || !st.Unusable || st.AccessToken != first.AccessToken {
		t.Fatalf("stored %+v, want the old token marked unusable", st)
	}
	// Another node (a restart, a failover) whose clock is 4 s behind.
	other := &TokenStore{Now: func() time.Time { return storeT0.Add(55 * time.Second) }}
	f.err = nil
	got, err := other.Serve(context.Background(), kv, w)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == first.AccessToken || !got.Fresh {
		t.Fatalf("served %s (fresh=%v): the retired token was handed out again", got.AccessToken, got.Fresh)
	}
}

// blockingKV blocks every Get until release is closed.
type blockingKV struct {
	*memKV
	entered chan struct{}
	release chan struct{}
}

func (k *blockingKV) Get(ctx context.Context, key string) ([]byte, error) {
	select {
	case k.entered <- struct{}{}:
	default:
	}
	<-k.release
	return k.memKV.Get(ctx, key)
}

// A reader that joins another reader's flight gets a token that meets its
// own min_ttl, not only the other's.
func TestStoreJoinerGetsItsOwnMinRemaining(t *testing.T) {
	s, kv, clock, f := newStoreFixture()
	if _, _, err := s.Get(context.Background(), kv, "k", "fp", 0, f.fetch); err != nil {
		t.Fatal(err)
	}
	clock.Set(storeT0.Add(55 * time.Minute)) // 5 minutes left
	restarted := &TokenStore{Now: clock.Now}
	slow := &blockingKV{memKV: kv, entered: make(chan struct{}, 1), release: make(chan struct{})}
	lenient := make(chan *StoredToken, 1)
	go func() {
		tok, _, _ := restarted.Get(context.Background(), slow, "k", "fp", time.Minute, f.fetch)
		lenient <- tok
	}()
	<-slow.entered
	strict := make(chan *StoredToken, 1)
	go func() {
		tok, _, err := restarted.Get(context.Background(), slow, "k", "fp", 10*time.Minute, f.fetch)
		if err != nil {
			t.Error(err)
		}
		strict <- tok
	}()
	time.Sleep(50 * time.Millisecond) // let the second reader join the flight
	close(slow.release)
	if tok := <-lenient; tok == nil || tok.AccessToken != "AT-1" {
		t.Errorf("the lenient reader got %+v, want the cached AT-1", tok)
	}
	if tok := <-strict; tok == nil || tok.Remaining(clock.Now()) < 10*time.Minute {
		t.Fatalf("the reader asking 10m got %+v with %s left", tok, tok.Remaining(clock.Now()))
	}
}

// A drop that lands while a fetch is in flight removes the fetched token
// again, and hands it to the caller for revocation.
func TestStoreDropDuringFetch(t *testing.T) {
	s, kv, _, f := newStoreFixture()
	started, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context, cur *StoredToken) (*Token, error) {
		close(started)
		<-release
		return f.fetch(ctx, cur)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Get(context.Background(), kv, "role/a", "fp", 0, slow)
		done <- err
	}()
	<-started
	if err := s.Drop(context.Background(), kv, "role/a"); err != nil {
		t.Fatal(err)
	}
	close(release)
	err := <-done
	var dropped *DroppedError
	if !errors.As(err, &dropped) || dropped.Token == nil || dropped.Token.AccessToken != "AT-1" {
		t.Fatalf("Get = %v, want a DroppedError carrying AT-1", err)
	}
	if st := kv.stored(t, "role/a"); st != nil {
		t.Fatalf("storage still holds %+v after the drop", st)
	}
	if _, ok := s.InMemory("role/a"); ok {
		t.Fatal("memory still holds the dropped key's token")
	}
}

// A refresh token the IdP refused for good is forgotten: the next fetch is
// not given it again.
func TestStoreForgetsRefusedRefreshToken(t *testing.T) {
	s, kv, clock, f := newStoreFixture()
	if _, _, err := s.Get(context.Background(), kv, "k", "fp", 0, f.fetch); err != nil {
		t.Fatal(err)
	}
	clock.Set(storeT0.Add(2 * time.Hour))
	refused := errors.New("invalid_grant")
	dead := func(ctx context.Context, cur *StoredToken) (*Token, error) { return nil, RefreshDead(refused) }
	if _, _, err := s.Get(context.Background(), kv, "k", "fp", 0, dead); !errors.Is(err, refused) || !errors.Is(err, ErrRefreshDead) {
		t.Fatalf("Get = %v", err)
	}
	if st := kv.stored(t, "k"); st == nil || st.RefreshToken != "" {
		t.Fatalf("stored %+v, want the refresh token forgotten", st)
	}
	if _, _, err := s.Get(context.Background(), kv, "k", "fp", 0, f.fetch); err != nil {
		t.Fatal(err)
	}
	if cur := f.lastCurrent(); cur == nil || cur.RefreshToken != "" {
		t.Fatalf("the next fetch was given %+v, want no refresh token", cur)
	}
}
