package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestExchangeCacheBoundedLRU(t *testing.T) {
	now := time.Now()
	c := &ExchangeCache{Max: 2, Now: func() time.Time { return now }}
	var fetches atomic.Int64
	get := func(subject string) *StoredToken {
		t.Helper()
		tok, _, err := c.Get(context.Background(), SubjectKey("r", TokenTypeAccessToken, subject), "fp", time.Second,
			func(context.Context) (*Token, error) {
				fetches.Add(1)
				return &Token{AccessToken: "for-" + subject, ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if get("a").AccessToken != "for-a" || get("b").AccessToken != "for-b" || get("a").AccessToken != "for-a" {
		t.Fatal("a caller got another subject's exchange")
	}
	if fetches.Load() != 2 {
		t.Fatalf("%d exchanges, want 2 (a again is cached)", fetches.Load())
	}
	get("c") // evicts b, the least recently used
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want the bound 2", c.Len())
	}
	get("a")
	if fetches.Load() != 3 {
		t.Fatalf("a was evicted (%d exchanges), want b evicted", fetches.Load())
	}
	get("b")
	if fetches.Load() != 4 {
		t.Fatalf("b still cached after eviction (%d exchanges)", fetches.Load())
	}
}

func TestExchangeCacheSingleFlightAndFreshness(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	c := &ExchangeCache{Now: clock}
	var fetches atomic.Int64
	release := make(chan struct{})
	fetch := func(context.Context) (*Token, error) {
		fetches.Add(1)
		<-release
		return &Token{AccessToken: "x", ObtainedAt: now, Expiry: now.Add(time.Minute)}, nil
	}
	key := SubjectKey("r", TokenTypeAccessToken, "subject")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := c.Get(context.Background(), key, "fp", time.Second, fetch); err != nil {
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
	if _, fresh, _ := c.Get(context.Background(), key, "fp2", time.Second, func(context.Context) (*Token, error) {
		return &Token{AccessToken: "y", ObtainedAt: now, Expiry: now.Add(time.Minute)}, nil
	}); !fresh {
		t.Fatal("a token of another fingerprint was served")
	}
	if strings.Contains(key, "subject") {
		t.Fatalf("the key %q holds the subject token", key)
	}
}

// Expired exchanges are not held until the bound pushes them out: the next
// insert sweeps them, and a lookup of one forgets it.
func TestExchangeCacheForgetsExpiredTokens(t *testing.T) {
	now := time.Now()
	c := &ExchangeCache{Max: 100, Now: func() time.Time { return now }}
	get := func(subject string, life time.Duration) {
		t.Helper()
		_, _, err := c.Get(context.Background(), SubjectKey("r", TokenTypeAccessToken, subject), "fp", time.Second,
			func(context.Context) (*Token, error) {
				return &Token{AccessToken: "for-" + subject, ObtainedAt: now, Expiry: now.Add(life)}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
	}
	get("short-1", time.Minute)
	get("short-2", time.Minute)
	get("long", time.Hour)
	now = now.Add(2 * time.Minute)
	get("new", time.Hour)
	if c.Len() != 2 {
		t.Fatalf("Len = %d after the short tokens expired, want 2 (long, new)", c.Len())
	}
	now = now.Add(2 * time.Hour)
	get("long", time.Hour) // looked up expired: forgotten, then fetched again
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the refetched long; new expired and swept)", c.Len())
	}
}

// An exchange in flight when its role is dropped goes to its caller but is
// not cached: the next read after the drop exchanges afresh.
func TestExchangeCacheDropDuringFlight(t *testing.T) {
	c := &ExchangeCache{}
	key := SubjectKey("r", TokenTypeAccessToken, "alice")
	inFlight, release := make(chan struct{}), make(chan struct{})
	var fetches atomic.Int64
	fetch := func(context.Context) (*Token, error) {
		n := fetches.Add(1)
		if n == 1 {
			close(inFlight)
			<-release
		}
		now := time.Now()
		return &Token{AccessToken: fmt.Sprintf("tok-%d", n), ObtainedAt: now, Expiry: now.Add(time.Hour)}, nil
	}
	done := make(chan *StoredToken)
	go func() {
		tok, _, _ := c.Get(context.Background(), key, "fp", time.Second, fetch)
		done <- tok
	}()
	<-inFlight
	c.DropRole("r")
	close(release)
	if tok := <-done; tok == nil || tok.AccessToken != "tok-1" {
		t.Fatalf("the caller in flight got %v, want its exchange", tok)
	}
	if tok, _, _ := c.Get(context.Background(), key, "fp", time.Second, fetch); tok.AccessToken != "tok-2" || c.Len() != 1 {
		t.Fatalf("after the drop: %s (%d held), want a fresh exchange", tok.AccessToken, c.Len())
	}
}
