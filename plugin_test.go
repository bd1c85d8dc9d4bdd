package idptokens

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Unloading the mount (Clean) closes the idle connections of every config's
// client: a disabled mount keeps no sockets to IdPs open.
func TestCleanClosesIdleConnections(t *testing.T) {
	e := newTestEnv(t)
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s", Scopes: []string{"r"}})
	srv := httptest.NewUnstartedServer(idp)
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateClosed || s == http.StateHijacked {
			delete(open, c)
		} else {
			open[c] = true
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": srv.URL + idp.TokenPath(), "client_id": "app", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "c", "scopes": "r"})
	e.creds("r")
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(open)
	}
	if count() == 0 {
		t.Fatal("the token request left no idle connection to test with")
	}
	e.b.Clean(context.Background())
	deadline := time.Now().Add(2 * time.Second)
	for count() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n > 0 {
		t.Fatalf("%d connections to the IdP still open after Clean", n)
	}
}

// Invalidate (a write on another node) drops the in-memory copy.
func TestInvalidateDropsMemory(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	e.creds("mwi")
	// Another node drops the token from storage.
	if err := e.storage.Delete(context.Background(), "tokens/role/mwi"); err != nil {
		t.Fatal(err)
	}
	e.creds("mwi")
	if idp.TokenRequests() != 1 {
		t.Fatalf("without invalidation the memory copy should serve: %d requests", idp.TokenRequests())
	}
	e.b.InvalidateKey(context.Background(), "tokens/role/mwi")
	e.creds("mwi")
	if idp.TokenRequests() != 2 {
		t.Fatalf("after invalidation the token must be fetched again: %d requests", idp.TokenRequests())
	}
}
