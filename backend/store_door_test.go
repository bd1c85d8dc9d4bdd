package backend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The doors of the token store other than a plain read: logins, drops
// observed from a request's beginning, and the retirement's error paths.

// A refused refresh whose fallback grant reached the IdP (which minted,
// killing the current token) but whose answer was lost: the retired record
// is what stays, so no node serves the dead token again, not even one whose
// clock lags a few seconds.
func TestStoreRefusedRefreshThenLostAnswerStaysUnusable(t *testing.T) {
	s, kv, clock, f := singleActiveFixture(time.Minute)
	w := singleActiveWant(f, 0)
	first, err := s.Serve(context.Background(), kv, w)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(storeT0.Add(59 * time.Second))
	lost := errors.New("refresh refused, then the fallback grant's answer was lost")
	w.Fetch = func(context.Context, *StoredToken) (*Token, error) { return nil, RefreshDead(lost) }
	if _, err := s.Serve(context.Background(), kv, w); !errors.Is(err, lost) {
		t.Fatalf("Serve = %v, want the lost answer's error", err)
	}
	st := kv.stored(t, "config/mt")
	if st == nil || !st.Unusable || st.RefreshToken != "" || st.AccessToken != first.AccessToken {
		t.Fatalf("stored %+v, want the old token still marked unusable, its refresh token forgotten", st)
	}
	if mem, _ := s.InMemory("config/mt"); mem == nil || !mem.Unusable {
		t.Fatalf("memory holds %+v, want it unusable", mem)
	}
	lagging := &TokenStore{Now: func() time.Time { return storeT0.Add(54 * time.Second) }}
	w.Fetch = f.fetch
	got, err := lagging.Serve(context.Background(), kv, w)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken == first.AccessToken {
		t.Fatal("a node whose clock lags 5 s served the token the lost mint killed")
	}
}

// A login replaces the key's token whatever its freshness, with its own
// request (never a reader's flight), and is told about a drop after began.
func TestStoreLoginReplacesAndSeesDrops(t *testing.T) {
	s, kv, _, f := newStoreFixture()
	read := Want{Key: "role/app", Fingerprint: "fp", Fetch: f.fetch}
	if _, err := s.Serve(context.Background(), kv, read); err != nil {
		t.Fatal(err)
	}
	login := Want{Key: "role/app", Fingerprint: "fp", Login: true, Fetch: f.fetch}
	got, err := s.Serve(context.Background(), kv, login)
	if err != nil || !got.Fresh || got.AccessToken != "AT-2" {
		t.Fatalf("login = %+v %v, want AT-2 replacing the fresh AT-1", got.StoredToken, err)
	}
	if cur := f.lastCurrent(); cur != nil {
		t.Fatalf("the login's request was handed the current token %+v", cur)
	}
	began := s.Epoch()
	if err := s.Drop(context.Background(), kv, "role/app"); err != nil {
		t.Fatal(err)
	}
	login.Began = began
	var dropped *DroppedError
	if _, err := s.Serve(context.Background(), kv, login); !errors.As(err, &dropped) || dropped.Token != nil {
		t.Fatalf("a login begun before a drop: %v, want DroppedError with nothing fetched", err)
	}
	if f.count() != 2 || kv.stored(t, "role/app") != nil {
		t.Fatalf("after the refused login: %d fetches, stored %+v", f.count(), kv.stored(t, "role/app"))
	}
	// A drop of a prefix reaches every key under it.
	began = s.Epoch()
	s.DropEphemeral("role/")
	if _, err := s.Serve(context.Background(), kv, Want{Key: "role/app", Fingerprint: "fp", Began: began, Fetch: f.fetch}); !errors.As(err, &dropped) {
		t.Fatalf("a read begun before a prefix drop: %v, want DroppedError", err)
	}
	if _, err := s.Serve(context.Background(), kv, Want{Key: "role/app", Fingerprint: "fp", Began: s.Epoch(), Fetch: f.fetch}); err != nil {
		t.Fatalf("a read begun after the drop: %v", err)
	}
}

// A login on a single-active key whose token is held longer than the store
// may wait is refused with the hold's end, before its request is sent;
// within the wait it waits, retires the token, then sends.
func TestStoreLoginWaitsForTheHold(t *testing.T) {
	s, kv, clock, f := singleActiveFixture(time.Minute)
	w := singleActiveWant(f, 0)
	first, err := s.Serve(context.Background(), kv, w)
	if err != nil {
		t.Fatal(err)
	}
	login := w
	login.Login = true
	clock.Set(storeT0.Add(30 * time.Second))
	var held *HeldError
	if _, err := s.Serve(context.Background(), kv, login); !errors.As(err, &held) || !held.Until.Equal(first.MintAfter) {
		t.Fatalf("login under a hold = %v, want HeldError until %s", err, first.MintAfter)
	}
	if f.count() != 1 {
		t.Fatalf("%d fetches: the refused login's request was sent", f.count())
	}
	if st := kv.stored(t, "config/mt"); st.Unusable {
		t.Fatal("a refused login retired the held token")
	}
	clock.Set(first.MintAfter.Add(-2 * time.Second))
	got, err := s.Serve(context.Background(), kv, login)
	if err != nil || got.AccessToken != "AT-2" {
		t.Fatalf("login 2 s before the hold ends: %+v %v, want it to wait and mint", got.StoredToken, err)
	}
	if sent := got.ObtainedAt; sent.Before(first.MintAfter) {
		t.Fatalf("the login's request went out at +%s, before the hold ended at +%s", sent.Sub(storeT0), first.MintAfter.Sub(storeT0))
	}
}

// A login and a read's mint for one key never overlap at the IdP.
func TestStoreLoginAndReadShareALane(t *testing.T) {
	s, kv, _, f := newStoreFixture()
	var inFlight, most atomic.Int32
	slow := func(ctx context.Context, cur *StoredToken) (*Token, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		return f.fetch(ctx, cur)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := Want{Key: "role/app", Fingerprint: "fp", MinRemaining: 2 * time.Hour, Fetch: slow, Login: i%2 == 0}
			if _, err := s.Serve(context.Background(), kv, w); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Fatalf("%d requests for one key overlapped", most.Load())
	}
}

// Bounded keys are stored like any other, but memory holds at most the
// bound of them (least recently used first out): a read of an evicted one
// loads it from storage and is served the same token, with no fetch.
func TestStoreBoundedKeysStayInStorage(t *testing.T) {
	s, kv, _, f := newStoreFixture()
	s.MaxBounded = 2
	want := func(who string) Want {
		return Want{Key: "entity/app/" + who, Fingerprint: "fp", Bounded: true, Fetch: f.fetch}
	}
	served := map[string]string{}
	for _, who := range []string{"alice", "bob", "carol"} {
		got, err := s.Serve(context.Background(), kv, want(who))
		if err != nil {
			t.Fatal(err)
		}
		served[who] = got.AccessToken
	}
	if n := s.bounded.Len(); n != 2 {
		t.Fatalf("%d bounded tokens in memory, want the bound 2", n)
	}
	if _, ok := s.InMemory("entity/app/alice"); ok {
		t.Fatal("the least recently used token is still in memory")
	}
	kv.calls()
	got, err := s.Serve(context.Background(), kv, want("alice"))
	if err != nil || got.AccessToken != served["alice"] || got.Fresh || f.count() != 3 {
		t.Fatalf("alice after eviction: %+v %v (fetches %d), want her stored token", got.StoredToken, err, f.count())
	}
	if gets, puts, _ := kv.calls(); gets != 1 || puts != 0 {
		t.Fatalf("the evicted token cost %d gets and %d puts, want one get", gets, puts)
	}
	if s.Cached() != 2 {
		t.Fatalf("Cached = %d, want the 2 held", s.Cached())
	}
}

// A prefix drop deletes every stored token under it, at any depth, in
// memory and storage, and a request begun before it stores nothing.
func TestStoreDropPrefix(t *testing.T) {
	s, kv, _, f := newStoreFixture()
	for _, k := range []string{"entity/app/alice", "entity/app/bob", "entity/other/alice", "role/app"} {
		if _, err := s.Serve(context.Background(), kv, Want{Key: k, Fingerprint: "fp", Bounded: true, Fetch: f.fetch}); err != nil {
			t.Fatal(err)
		}
	}
	began := s.Epoch()
	n, err := s.DropPrefix(context.Background(), kv, "entity/app/")
	if err != nil || n != 2 {
		t.Fatalf("DropPrefix = %d, %v; want the 2 tokens of role app", n, err)
	}
	for _, k := range []string{"entity/app/alice", "entity/app/bob"} {
		if kv.stored(t, k) != nil {
			t.Errorf("%s still stored", k)
		}
		if _, ok := s.InMemory(k); ok {
			t.Errorf("%s still in memory", k)
		}
	}
	if kv.stored(t, "entity/other/alice") == nil || kv.stored(t, "role/app") == nil {
		t.Fatal("the drop reached keys outside its prefix")
	}
	var dropped *DroppedError
	if _, err := s.Serve(context.Background(), kv, Want{Key: "entity/app/carol", Fingerprint: "fp", Bounded: true, Began: began, Fetch: f.fetch}); !errors.As(err, &dropped) {
		t.Fatalf("a request begun before the prefix drop: %v, want DroppedError", err)
	}
}
