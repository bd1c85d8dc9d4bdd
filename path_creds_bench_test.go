package idptokens

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/storagecount"
)

// newWarmEnv mounts the backend over counting storage, with role "app" of a
// client_credentials config and its token already cached.
func newWarmEnv(tb testing.TB) (*idpBackend, *storagecount.Storage, *logical.Request) {
	tb.Helper()
	storage := &storagecount.Storage{Storage: &logical.InmemStorage{}}
	conf := logical.TestBackendConfig()
	conf.StorageView = storage
	conf.Logger = hclog.NewNullLogger()
	conf.System = &countingSys{SystemView: &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}}
	lb, err := Factory(context.Background(), conf)
	if err != nil {
		tb.Fatal(err)
	}
	b := lb.(*idpBackend)
	idp := fakeidp.New(fakeidp.Options{ClientID: "app", ClientSecret: "secret", Scopes: []string{"read"}})
	srv := httptest.NewServer(idp)
	tb.Cleanup(srv.Close)
	for _, w := range []struct {
		path string
		data map[string]any
	}{
		{"config/c", map[string]any{"token_url": srv.URL + idp.TokenPath(), "client_id": "app", "client_secret": "secret"}},
		{"roles/app", map[string]any{"config": "c", "scopes": "read"}},
	} {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: w.path, Data: w.data, Storage: storage})
		if err != nil || resp.IsError() {
			tb.Fatalf("%s: %v %v", w.path, err, resp)
		}
	}
	req := &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: storage}
	r := *req
	if resp, err := b.HandleRequest(context.Background(), &r); err != nil || resp.IsError() {
		tb.Fatalf("creds: %v %v", err, resp)
	}
	if idp.TokenRequests() != 1 {
		tb.Fatalf("%d IdP requests", idp.TokenRequests())
	}
	return b, storage, req
}

// A cache-hit creds read makes no storage call at all: no Get, List or Put
// (in a real Vault each would be a round trip from the plugin to Vault).
func TestCredsCacheHitMakesNoStorageCalls(t *testing.T) {
	b, storage, req := newWarmEnv(t)
	storage.Reset()
	for range 10 {
		r := *req
		resp, err := b.HandleRequest(context.Background(), &r)
		if err != nil || resp.IsError() || resp.Data["access_token"] == "" {
			t.Fatalf("creds: %v %v", err, resp)
		}
	}
	if n := storage.Total(); n != 0 {
		t.Fatalf("10 cache-hit reads made %d storage calls (get %d list %d put %d delete %d), want 0",
			n, storage.Gets.Load(), storage.Lists.Load(), storage.Puts.Load(), storage.Deletes.Load())
	}
}

// countingSys counts the System() calls a read makes that an external
// plugin pays as gRPC round trips to Vault.
type countingSys struct {
	logical.SystemView
	maxLeaseTTL atomic.Int64
}

func (s *countingSys) MaxLeaseTTL() time.Duration {
	s.maxLeaseTTL.Add(1)
	return s.SystemView.MaxLeaseTTL()
}

// BenchmarkCredsCacheHit is the hot path: a creds read through the
// framework's HandleRequest with a warm cache. It also reports storage
// calls per read (must be 0).
func BenchmarkCredsCacheHit(b *testing.B) {
	be, storage, req := newWarmEnv(b)
	ctx := context.Background()
	storage.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := *req
		resp, err := be.HandleRequest(ctx, &r)
		if err != nil || resp.Data["access_token"] == nil {
			b.Fatal(err, resp)
		}
	}
	b.ReportMetric(float64(storage.Total())/float64(b.N), "storage-calls/op")
}

// BenchmarkCredsCacheHitParallel is the same with GOMAXPROCS readers.
func BenchmarkCredsCacheHitParallel(b *testing.B) {
	be, storage, req := newWarmEnv(b)
	ctx := context.Background()
	storage.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := *req
			resp, err := be.HandleRequest(ctx, &r)
			if err != nil || resp.Data["access_token"] == nil {
				b.Fatal(err, resp)
			}
		}
	})
	b.ReportMetric(float64(storage.Total())/float64(b.N), "storage-calls/op")
}

// BenchmarkCachedTokenMemory creates one role and reads its token per
// iteration, and reports the live heap (after GC) it added per cached
// token: the role entry, the token, the fingerprint memo and the cache
// maps. Run with -benchtime=10000x for the scale figure.
func BenchmarkCachedTokenMemory(b *testing.B) {
	be, storage, _ := newWarmEnv(b)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for b.Loop() {
		name := fmt.Sprintf("m%07d", n)
		n++
		for _, req := range []*logical.Request{
			{Operation: logical.UpdateOperation, Path: "roles/" + name, Data: map[string]any{"config": "c", "scopes": "read"}, Storage: storage},
			{Operation: logical.ReadOperation, Path: "creds/" + name, Storage: storage},
		} {
			if resp, err := be.HandleRequest(ctx, req); err != nil || resp.IsError() {
				b.Fatal(err, resp)
			}
		}
	}
	b.StopTimer()
	// InmemStorage holds the stored copies in this process too: subtract
	// them, so the figure is what the plugin's memory grows by (Vault holds
	// storage in its own process).
	storageBytes := 0
	for _, prefix := range []string{"roles/", "tokens/role/"} {
		keys, _ := storage.Storage.List(ctx, prefix)
		for _, k := range keys {
			if e, _ := storage.Storage.Get(ctx, prefix+k); e != nil && strings.HasPrefix(k, "m") {
				storageBytes += len(e.Value) + len(e.Key) + 64 // value, key, entry and map overhead
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if be.tokens.Cached() < n {
		b.Fatalf("%d tokens cached, want at least %d", be.tokens.Cached(), n)
	}
	live := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)-int64(storageBytes)) / float64(n)
	b.ReportMetric(live, "heap-B/token")
	b.ReportMetric(float64(storageBytes)/float64(n), "inmem-storage-B/token")
}

// BenchmarkCachedTokenMemoryPerEntity is BenchmarkCachedTokenMemory for
// people's tokens: one per_entity role, and per iteration one more person
// (an entity) who logs in (auth-url, the IdP's authorize step, callback)
// and reads their own token, which the token store's bounded cache then
// holds. It reports the live heap (after GC) added per person, storage's
// in-process copies subtracted, once with the fake IdP's own record of each
// code, token and request (an upper bound, as BenchmarkCachedTokenMemory
// reports) and once after the fake IdP is closed and collected (the
// plugin's own). Run with -benchtime=10000x (backend.DefaultBoundedTokens
// people, every token held in memory).
func BenchmarkCachedTokenMemoryPerEntity(b *testing.B) {
	ctx := context.Background()
	storage := &logical.InmemStorage{}
	conf := logical.TestBackendConfig()
	conf.StorageView = storage
	conf.Logger = hclog.NewNullLogger()
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	lb, err := Factory(ctx, conf)
	if err != nil {
		b.Fatal(err)
	}
	be := lb.(*idpBackend)
	idp := fakeidp.New(fakeidp.Options{ClientID: "people", ClientSecret: "secret", Scopes: []string{"read"}, RedirectURIs: []string{vaultCallback}})
	srv := httptest.NewServer(idp)
	defer func() {
		if srv != nil { // the closure holds the variable, not the server
			srv.Close()
		}
	}()
	do := func(entity string, op logical.Operation, path string, data map[string]any) *logical.Response {
		resp, err := be.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: storage, EntityID: entity})
		if err != nil || (resp != nil && resp.IsError()) {
			b.Fatalf("%s %s as %q: %v %v", op, path, entity, err, respErr(resp))
		}
		return resp
	}
	do("", logical.UpdateOperation, "config/people", map[string]any{"token_url": srv.URL + idp.TokenPath(), "auth_url": srv.URL + "/connect/authorize",
		"client_id": "people", "client_secret": "secret", "redirect_uris": vaultCallback})
	do("", logical.UpdateOperation, "roles/people", map[string]any{"config": "people", "grant_type": "authorization_code", "scopes": "read", "per_entity": true})
	// One person's login: auth-url as the entity, the IdP's authorize step
	// (a 302 to the callback with a code), the callback, and their read.
	login := func(n int) {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n) // the shape of a Vault entity ID
		u, err := url.Parse(do(id, logical.UpdateOperation, "auth-url/people", nil).Data["url"].(string))
		if err != nil {
			b.Fatal(err)
		}
		q := u.Query()
		q.Set("fake_user", fmt.Sprintf("user%05d", n))
		u.RawQuery = q.Encode()
		rec := httptest.NewRecorder()
		idp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u.String(), nil))
		loc, err := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
			b.Fatalf("authorize: HTTP %d, Location %q", rec.Code, rec.Header().Get("Location"))
		}
		do("", logical.UpdateOperation, "callback", map[string]any{"code": loc.Query().Get("code"), "state": loc.Query().Get("state")})
		if tok := do(id, logical.ReadOperation, "token/people", nil).Data["access_token"].(string); idp.OwnerOf(tok) != fmt.Sprintf("user%05d", n) {
			b.Fatalf("person %d read a token acting as %q", n, idp.OwnerOf(tok))
		}
	}
	login(-1) // the config's state and the role are cached before the count starts
	stored := func() int {
		keys, err := logical.CollectKeys(ctx, storage)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, k := range keys {
			if e, _ := storage.Get(ctx, k); e != nil {
				n += len(e.Value) + len(e.Key) + 64 // value, key, entry and map overhead
			}
		}
		return n
	}
	cached0, stored0 := be.tokens.Cached(), stored()
	var before, withIdP, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for b.Loop() {
		login(n)
		n++
	}
	b.StopTimer()
	if got, want := be.tokens.Cached()-cached0, min(n, backend.DefaultBoundedTokens-1); got != want {
		b.Fatalf("%d people's tokens cached, want %d", got, want)
	}
	storageBytes := stored() - stored0
	runtime.GC()
	runtime.ReadMemStats(&withIdP)
	// The fake IdP keeps every code, token and request it saw: close it and
	// let it be collected, so that what is left is the plugin's.
	srv.Close()
	srv.Config.Handler, srv, idp = nil, nil, nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(be) // measured above: live until here
	runtime.KeepAlive(storage)
	perPerson := func(m runtime.MemStats) float64 {
		return float64(int64(m.HeapAlloc)-int64(before.HeapAlloc)-int64(storageBytes)) / float64(n)
	}
	b.ReportMetric(perPerson(after), "heap-B/person")
	b.ReportMetric(perPerson(withIdP), "with-fakeidp-B/person")
	b.ReportMetric(float64(storageBytes)/float64(n), "inmem-storage-B/person")
}
