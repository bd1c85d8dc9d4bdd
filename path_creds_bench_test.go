package idptokens

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

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
