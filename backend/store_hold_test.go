package backend

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The one rule of the cache for tokens that do not kill each other: a
// token is handed out while it has its margin left (a fifth of its
// lifetime, at least MarginFloor, at most MarginCeiling; the reader's
// MinRemaining when larger; at most half the lifetime), and RotatesIn says
// when that ends: the read RotatesIn later still gets it, the read just
// after gets the next one.
func TestStoreHandsOutUntilTheMargin(t *testing.T) {
	tests := []struct {
		lifetime, minRemaining time.Duration
		until                  time.Duration // after the fetch: the last moment it is handed out
	}{
		{time.Hour, 0, 55 * time.Minute},                       // a fifth is 12m: the 5m ceiling
		{100 * time.Second, 0, 80 * time.Second},               // a fifth
		{20 * time.Second, 0, 16 * time.Second},                // a fifth
		{10 * time.Second, 0, 8 * time.Second},                 // a fifth: the floor
		{8 * time.Second, 0, 6 * time.Second},                  // a fifth is 1.6s: the 2s floor
		{time.Hour, 10 * time.Minute, 50 * time.Minute},        // a min_ttl above the margin
		{time.Hour, time.Minute, 55 * time.Minute},             // a min_ttl below it
		{time.Hour, 2 * time.Hour, 30 * time.Minute},           // capped at half the lifetime
		{24 * time.Hour, 0, 24*time.Hour - 5*time.Minute},      // the ceiling
		{10 * time.Minute, 0, 8 * time.Minute},                 // a fifth
		{3 * time.Second, 0, time.Second},                      // half the lifetime is 1.5s: a lease's least, 2s left
		{20 * time.Second, 12 * time.Second, 10 * time.Second}, // half
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/min%s", tc.lifetime, tc.minRemaining), func(t *testing.T) {
			s, kv, clock, f := newStoreFixture()
			f.ttl = tc.lifetime
			w := Want{Key: "k", Fingerprint: "fp", MinRemaining: tc.minRemaining, Fetch: f.fetch}
			first, err := s.Serve(context.Background(), kv, w)
			if err != nil {
				t.Fatal(err)
			}
			if first.RotatesIn != tc.until {
				t.Fatalf("fresh token: RotatesIn %s, want %s", first.RotatesIn, tc.until)
			}
			for _, before := range []time.Duration{tc.until / 2, tc.until - time.Second, tc.until} {
				clock.Set(storeT0.Add(before))
				got, err := s.Serve(context.Background(), kv, w)
				if err != nil || got.AccessToken != first.AccessToken || got.Fresh {
					t.Fatalf("at +%s: %v %+v, want the cached token", before, err, got.StoredToken)
				}
				if got.RotatesIn != tc.until-before {
					t.Fatalf("at +%s: RotatesIn %s, want %s", before, got.RotatesIn, tc.until-before)
				}
			}
			clock.Set(storeT0.Add(tc.until + time.Nanosecond))
			got, err := s.Serve(context.Background(), kv, w)
			if err != nil || got.AccessToken == first.AccessToken || !got.Fresh {
				t.Fatalf("just after +%s: %v %+v, want the next token", tc.until, err, got.StoredToken)
			}
			if left := first.Remaining(clock.Now()); left < min(Margin(tc.lifetime), tc.lifetime/2)-time.Nanosecond {
				t.Fatalf("the old token had %s left when the next was handed out, less than its margin", left)
			}
		})
	}
}

// For single-active tokens RotatesIn is the holding period: the read a
// second after it mints the next token, at MintAfter.
func TestStoreSingleActiveRotatesInIsTheHold(t *testing.T) {
	s, kv, clock, f := singleActiveFixture(20 * time.Second)
	w := singleActiveWant(f, 8*time.Second)
	for _, at := range []time.Duration{0, 3 * time.Second, 9*time.Second + 600*time.Millisecond, 10 * time.Second} {
		clock.Set(storeT0.Add(at))
		got, err := s.Serve(context.Background(), kv, w)
		if err != nil || got.AccessToken != "AT-1" {
			t.Fatalf("at +%s: %v %+v", at, err, got.StoredToken)
		}
		if got.RotatesIn != got.Hold || got.RotatesIn != 11*time.Second-at {
			t.Fatalf("at +%s: RotatesIn %s, hold %s, want both %s", at, got.RotatesIn, got.Hold, 11*time.Second-at)
		}
	}
	clock.Set(storeT0.Add(11 * time.Second)) // the end of every holding period
	clock.Advance(time.Second)
	got, err := s.Serve(context.Background(), kv, w)
	if err != nil || got.AccessToken != "AT-2" || !got.ObtainedAt.Equal(storeT0.Add(12*time.Second)) {
		t.Fatalf("a second after the holding period: %v %+v, want AT-2 minted at +12s", err, got.StoredToken)
	}
}

// No token is handed out with a lease past its end: tokens of a few
// seconds, read every 100 ms, each answer's holding period at most the
// token's remaining life less HoldSkew.
func TestStoreNeverHoldsPastTheToken(t *testing.T) {
	for _, lifetime := range []time.Duration{2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second} {
		t.Run(lifetime.String(), func(t *testing.T) {
			s, kv, clock, f := newStoreFixture()
			f.ttl = lifetime
			w := Want{Key: "k", Fingerprint: "fp", Fetch: f.fetch}
			for i := 0; i < 100; i++ {
				got, err := s.Serve(context.Background(), kv, w)
				if err != nil {
					t.Fatal(err)
				}
				if left := got.Remaining(clock.Now()) - HoldSkew; got.Hold > left || got.Hold < MinHold {
					t.Fatalf("at +%s: held %s, the token has %s left less the skew", clock.Now().Sub(storeT0), got.Hold, left)
				}
				clock.Advance(100 * time.Millisecond)
			}
		})
	}
}
