package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Memory-only tokens (Want.Ephemeral): exchanges of the subject tokens
// callers bring, served through the same door as every other token.

func ephemeralWant(subject string, fetch func(context.Context) (*Token, error)) Want {
	return Want{
		Key: "exchange/r/" + SubjectDigest(TokenTypeAccessToken, subject), Fingerprint: "fp", MinRemaining: time.Second, Ephemeral: true,
		Fetch: func(ctx context.Context, _ *StoredToken) (*Token, error) { return fetch(ctx) },
	}
}

func TestStoreEphemeralBoundedLRU(t *testing.T) {
	now := time.Now()
	s := &TokenStore{MaxEphemeral: 2, Now: func() time.Time { return now }}
	var fetches atomic.Int64
	get := func(subject string) *StoredToken {
		t.Helper()
		got, err := s.Serve(context.Background(), nil, ephemeralWant(subject, func(context.Context) (*Token, error) {
			fetches.Add(1)
			return &Token{AccessToken: "for-" + subject, ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		return got.StoredToken
	}
	if get("a").AccessToken != "for-a" || get("b").AccessToken != "for-b" || get("a").AccessToken != "for-a" {
		t.Fatal("a caller got another subject's exchange")
	}
	if fetches.Load() != 2 {
		t.Fatalf("%d exchanges, want 2 (a again is cached)", fetches.Load())
	}
	get("c") // evicts b, the least recently used
	if s.Ephemeral() != 2 {
		t.Fatalf("Ephemeral = %d, want the bound 2", s.Ephemeral())
	}
	get("a")
	if fetches.Load() != 3 {
		t.Fatalf("a was evicted (%d exchanges), want b evicted", fetches.Load())
	}
	get("b")
	if fetches.Load() != 4 {
		t.Fatalf("b still cached after eviction (%d exchanges)", fetches.Load())
	}
	if s.Cached() != 0 {
		t.Fatalf("Cached = %d: memory-only tokens counted as stored ones", s.Cached())
	}
}

// The default bound is DefaultEphemeralTokens, exactly.
func TestStoreEphemeralDefaultBound(t *testing.T) {
	now := time.Now()
	s := &TokenStore{Now: func() time.Time { return now }}
	for i := range DefaultEphemeralTokens + 5 {
		subject := fmt.Sprint(i)
		if _, err := s.Serve(context.Background(), nil, ephemeralWant(subject, func(context.Context) (*Token, error) {
			return &Token{AccessToken: subject, ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
		})); err != nil {
			t.Fatal(err)
		}
	}
	if DefaultEphemeralTokens != 1000 || s.Ephemeral() != DefaultEphemeralTokens {
		t.Fatalf("held %d of %d inserted, bound %d; docs/api.md promises 1000", s.Ephemeral(), DefaultEphemeralTokens+5, DefaultEphemeralTokens)
	}
}

func TestStoreEphemeralSingleFlightAndFreshness(t *testing.T) {
	now := time.Now()
	s := &TokenStore{Now: func() time.Time { return now }}
	var fetches atomic.Int64
	release := make(chan struct{})
	w := ephemeralWant("subject", func(context.Context) (*Token, error) {
		fetches.Add(1)
		<-release
		return &Token{AccessToken: "x", ObtainedAt: now, Expiry: now.Add(time.Minute)}, nil
	})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Serve(context.Background(), nil, w); err != nil {
				t.Error(err)
			}
		}()
	}
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Callers that arrive while the exchange is under way join it.
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d exchanges for 20 concurrent callers, want 1", n)
	}
	// Another fingerprint (the role changed) is not served the old token.
	other := w
	other.Fingerprint = "fp2"
	other.Fetch = func(context.Context, *StoredToken) (*Token, error) {
		return &Token{AccessToken: "y", ObtainedAt: now, Expiry: now.Add(time.Minute)}, nil
	}
	if got, _ := s.Serve(context.Background(), nil, other); !got.Fresh {
		t.Fatal("a token of another fingerprint was served")
	}
	if strings.Contains(w.Key, "subject") {
		t.Fatalf("the key %q holds the subject token", w.Key)
	}
}

// Expired exchanges are not held until the bound pushes them out: the next
// insert sweeps them, and a lookup of one forgets it.
func TestStoreEphemeralForgetsExpiredTokens(t *testing.T) {
	now := time.Now()
	s := &TokenStore{MaxEphemeral: 100, Now: func() time.Time { return now }}
	get := func(subject string, life time.Duration) {
		t.Helper()
		if _, err := s.Serve(context.Background(), nil, ephemeralWant(subject, func(context.Context) (*Token, error) {
			return &Token{AccessToken: "for-" + subject, ObtainedAt: now, Expiry: now.Add(life)}, nil
		})); err != nil {
			t.Fatal(err)
		}
	}
	get("short-1", time.Minute)
	get("short-2", time.Minute)
	get("long", time.Hour)
	now = now.Add(2 * time.Minute)
	get("new", time.Hour)
	if s.Ephemeral() != 2 {
		t.Fatalf("Ephemeral = %d after the short tokens expired, want 2 (long, new)", s.Ephemeral())
	}
	now = now.Add(2 * time.Hour)
	get("long", time.Hour) // looked up expired: forgotten, then fetched again
	if s.Ephemeral() != 1 {
		t.Fatalf("Ephemeral = %d, want 1 (the refetched long; new expired and swept)", s.Ephemeral())
	}
}

// A reuse bound (the subject token's own life) ends reuse before the
// exchanged token's expiry, HoldSkew early as holds end: the next read asks
// the IdP again.
func TestStoreReuseBoundEndsReuse(t *testing.T) {
	now := time.Now()
	s := &TokenStore{Now: func() time.Time { return now }}
	var fetches atomic.Int64
	w := ephemeralWant("alice", func(context.Context) (*Token, error) {
		n := fetches.Add(1)
		return &Token{AccessToken: fmt.Sprint("x-", n), ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
	})
	w.ReuseUntil = now.Add(5 * time.Minute)
	if _, err := s.Serve(context.Background(), nil, w); err != nil {
		t.Fatal(err)
	}
	now = now.Add(5*time.Minute - HoldSkew - time.Millisecond)
	if got, _ := s.Serve(context.Background(), nil, w); got.Fresh || fetches.Load() != 1 {
		t.Fatalf("reused %v before the bound, fetches %d", !got.Fresh, fetches.Load())
	}
	now = now.Add(time.Millisecond)
	if got, _ := s.Serve(context.Background(), nil, w); !got.Fresh || fetches.Load() != 2 {
		t.Fatalf("at the bound: fresh %v, fetches %d, want a new exchange", got.Fresh, fetches.Load())
	}
	// Without a known end, ReuseFor from the fetch bounds it.
	w.ReuseUntil, w.ReuseFor = time.Time{}, time.Minute
	w.Key += "-opaque"
	s.Serve(context.Background(), nil, w)
	now = now.Add(time.Minute - HoldSkew)
	if got, _ := s.Serve(context.Background(), nil, w); !got.Fresh {
		t.Fatal("reused a minute after the fetch, with ReuseFor a minute")
	}
}

// An exchange in flight when its role is dropped is not kept, and its caller
// is told (DroppedError with the token, to revoke): the next read after the
// drop exchanges afresh.
func TestStoreEphemeralDropDuringFlight(t *testing.T) {
	s := &TokenStore{}
	inFlight, release := make(chan struct{}), make(chan struct{})
	var fetches atomic.Int64
	w := ephemeralWant("alice", func(context.Context) (*Token, error) {
		n := fetches.Add(1)
		if n == 1 {
			close(inFlight)
			<-release
		}
		now := time.Now()
		return &Token{AccessToken: fmt.Sprintf("tok-%d", n), ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
	})
	done := make(chan error)
	go func() {
		_, err := s.Serve(context.Background(), nil, w)
		done <- err
	}()
	<-inFlight
	if n := s.DropEphemeral("exchange/r/"); n != 0 {
		t.Fatalf("dropped %d before anything was held", n)
	}
	close(release)
	var dropped *DroppedError
	if err := <-done; !errors.As(err, &dropped) || dropped.Token == nil || dropped.Token.AccessToken != "tok-1" {
		t.Fatalf("the caller in flight got %v, want DroppedError with its exchange to revoke", err)
	}
	if got, err := s.Serve(context.Background(), nil, w); err != nil || got.AccessToken != "tok-2" || s.Ephemeral() != 1 {
		t.Fatalf("after the drop: %v %v (%d held), want a fresh exchange", got.StoredToken, err, s.Ephemeral())
	}
}
