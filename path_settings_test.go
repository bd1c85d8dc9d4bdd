package idptokens

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

func (e *testEnv) allowedHosts() []string {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "settings", nil).Data["allowed_hosts"].([]string)
}

func TestSettingsReadWrite(t *testing.T) {
	e := newTestEnv(t)
	if got := e.allowedHosts(); len(got) != 0 {
		t.Fatalf("default allowed_hosts = %q, want empty", got)
	}
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "IdP.Example.com,*.corp.example,[::1]"})
	want := []string{"idp.example.com", "*.corp.example", "::1"}
	if got := e.allowedHosts(); !slices.Equal(got, want) {
		t.Fatalf("allowed_hosts = %q, want %q", got, want)
	}
	// A write without the field keeps it; an empty list allows any host again.
	e.ok(logical.UpdateOperation, "settings", map[string]any{})
	if got := e.allowedHosts(); !slices.Equal(got, want) {
		t.Fatalf("after an empty write allowed_hosts = %q, want %q", got, want)
	}
	for _, bad := range []any{"https://idp.example.com", "idp.example.com:443", "*", "a.*.example", "idp.example.com/x", map[string]any{"a": 1}} {
		e.fails(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": bad}, "allowed_hosts")
	}
	e.fails(logical.UpdateOperation, "settings", map[string]any{"allowed_host": "x"}, "unknown field")
	if got := e.allowedHosts(); !slices.Equal(got, want) {
		t.Fatalf("refused writes changed allowed_hosts to %q", got)
	}
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": ""})
	if got := e.allowedHosts(); len(got) != 0 {
		t.Fatalf("allowed_hosts = %q after clearing, want empty", got)
	}
	// Settings outlive a restart.
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "idp.example.com"})
	again := newTestEnv(t, onStorage(e.storage))
	if got := again.allowedHosts(); !slices.Equal(got, []string{"idp.example.com"}) {
		t.Fatalf("after a restart allowed_hosts = %q", got)
	}
}

// Config writes naming a host outside allowed_hosts are refused, naming the
// field and the host.
func TestSettingsRefuseConfigHosts(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "idp.example.com,*.corp.example"})
	base := func(kv ...string) map[string]any {
		m := map[string]any{"token_url": "https://idp.example.com/token", "client_id": "c", "client_secret": "s"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	e.ok(logical.UpdateOperation, "config/ok", base())
	e.ok(logical.UpdateOperation, "config/sub", base("token_url", "https://login.eu.corp.example/oauth/token",
		"auth_url", "https://login.corp.example/authorize", "revocation_url", "https://IDP.example.com./revoke"))
	cases := []struct{ name, field, value, host string }{
		{"other host", "token_url", "https://evil.example.net/token", "evil.example.net"},
		{"apex of wildcard", "token_url", "https://corp.example/token", "corp.example"},
		{"suffix trick", "token_url", "https://idp.example.com.evil.net/token", "idp.example.com.evil.net"},
		{"subdomain of exact", "token_url", "https://x.idp.example.com/token", "x.idp.example.com"},
		{"loopback", "token_url", "http://127.0.0.1:8080/token", "127.0.0.1"},
		{"auth_url", "auth_url", "https://phish.example/authorize", "phish.example"},
		{"revocation_url", "revocation_url", "https://evil.example.net/revoke", "evil.example.net"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.fails(logical.UpdateOperation, "config/bad", base(c.field, c.value), c.field+": host \""+c.host+"\" is not in the mount's allowed_hosts")
			if resp := e.ok(logical.ReadOperation, "config/bad", nil); resp != nil {
				t.Fatal("a refused config was stored")
			}
		})
	}
	// A preset's default token_url is checked too.
	e.fails(logical.UpdateOperation, "config/mwi", map[string]any{"provider": "mwi", "client_id": "c", "client_secret": "s",
		"access_code": "1", "username": "u", "security_key": "k", "password": "p"}, `token_url: host "identity.magicwrighter.com"`)
	// Moving an existing config outside is refused as well.
	e.fails(logical.UpdateOperation, "config/ok", base("token_url", "https://evil.example.net/token"), "token_url: host")
}

// At request time: narrowing allowed_hosts after configs were written stops
// their requests (no retry, the IdP sees nothing), warns at the settings
// write, and keeps serving tokens already cached.
func TestSettingsRefuseAtRequestTime(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	e.ok(logical.UpdateOperation, "roles/cold", map[string]any{"config": "mwi", "scopes": "test_api"})
	tok := e.creds("mwi").Data["access_token"]

	resp := e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "idp.example.com"})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `config "mwi"`) || !strings.Contains(resp.Warnings[0], `"127.0.0.1"`) {
		t.Fatalf("warnings = %q, want one naming config mwi and its host", resp.Warnings)
	}
	if got := e.creds("mwi").Data["access_token"]; got != tok {
		t.Fatal("the cached token was not served after allowed_hosts changed")
	}
	before := idp.TokenRequests()
	msg := e.fails(logical.ReadOperation, "creds/cold", nil, `refused to contact host "127.0.0.1"`)
	if !strings.Contains(msg, `config "mwi"`) {
		t.Errorf("error %q does not name the config", msg)
	}
	if n := idp.TokenRequests() - before; n != 0 {
		t.Fatalf("the IdP received %d requests from a host outside allowed_hosts", n)
	}
	if keys := e.tokenKeys(); len(keys) != 1 {
		t.Fatalf("storage holds %v, want only the first role's token", keys)
	}
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "localhost,127.0.0.1"})
	if got := e.creds("cold").Data["access_token"].(string); !idp.Valid(got) {
		t.Fatal("after allowing the host again the token is not valid")
	}
}

// A settings change made on another node reaches this one through
// Invalidate; a restarted backend loads the settings before any request.
func TestSettingsInvalidateAndRestart(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	e.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mwi", "scopes": "test_api"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "mwi", "scopes": "test_api"})
	e.creds("mwi")

	other := newTestEnv(t, onStorage(e.storage)) // another node, same storage
	other.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "idp.example.com"})
	e.b.invalidate(context.Background(), settingsKey)
	e.fails(logical.ReadOperation, "creds/a", nil, "refused to contact host")

	restarted := newTestEnv(t, onStorage(e.storage))
	restarted.fails(logical.ReadOperation, "creds/b", nil, "refused to contact host")
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("the IdP saw %d requests, want only the first read's", n)
	}
}
