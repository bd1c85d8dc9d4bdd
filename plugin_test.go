package idptokens

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// sealWrapped says whether Vault seal-wraps the storage key: an entry of
// SealWrapStorage matches exactly, or as a prefix when it ends with '/'
// (the rule of sdk/logical.Paths.SealWrapStorage).
func sealWrapped(entries []string, key string) bool {
	for _, p := range entries {
		if key == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(key, p)) {
			return true
		}
	}
	return false
}

// The README says configs and pending login states are seal-wrapped (where
// the seal supports it: Vault Enterprise). Their prefixes are in the
// backend's SealWrapStorage, and every key the flows that store them really
// write falls under it: config writes (secrets, PEM keys), rotation (the
// previous secret) and auth-url (the pending login with its PKCE verifier).
func TestSealWrapCoversSecrets(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	e := a.testEnv
	special := e.b.Backend.PathsSpecial
	if special == nil {
		t.Fatal("the backend has no PathsSpecial")
	}
	wrapped := special.SealWrapStorage
	for _, p := range []string{configPrefix, authStatePrefix} {
		if !slices.Contains(wrapped, p) || !strings.HasSuffix(p, "/") {
			t.Errorf("SealWrapStorage %v does not cover the prefix %q", wrapped, p)
		}
	}

	cert, key := testkeys.ClientCert(t)
	flows := []struct {
		name string
		do   func()
	}{
		{"config write with every secret", func() {
			e.ok(logical.UpdateOperation, "config/secrets", map[string]any{
				"provider": "mwi", "token_url": "https://idp.example/connect/token", "client_id": "c", "client_secret": "s",
				"access_code": "ac", "username": "u", "security_key": "sk", "password": "pw",
			})
		}},
		{"config write with a TLS client key", func() {
			e.ok(logical.UpdateOperation, "config/mtls", map[string]any{
				"token_url": "https://idp.example/token", "client_id": "c", "client_auth": "tls_client_auth",
				"tls_client_cert": cert, "tls_client_key": key,
			})
		}},
		{"config update", func() {
			e.ok(logical.UpdateOperation, "config/secrets", map[string]any{"password": "pw2"})
		}},
		{"rotation", func() {
			e.ok(logical.UpdateOperation, "config/secrets/rotate", map[string]any{"client_secret": "s2"})
		}},
		{"auth-url (a pending login)", func() {
			a.begin(a.role, nil)
		}},
	}
	for _, f := range flows {
		before := storageEntries(t, e)
		f.do()
		after := storageEntries(t, e)
		var written []string
		for k, v := range after {
			if old, ok := before[k]; !ok || old != v {
				written = append(written, k)
			}
		}
		if len(written) == 0 {
			t.Errorf("%s wrote nothing; the check would prove nothing", f.name)
		}
		for _, k := range written {
			if !sealWrapped(wrapped, k) {
				t.Errorf("%s wrote %q, which SealWrapStorage %v does not cover", f.name, k, wrapped)
			}
		}
	}
}

// storageEntries is every stored key and its value.
func storageEntries(t *testing.T, e *testEnv) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range storageKeys(t, e.storage) {
		entry, err := e.storage.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if entry != nil {
			out[k] = string(entry.Value)
		}
	}
	return out
}

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
