package idptokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// mwiSecretFields are the secrets an MWI config holds.
var mwiSecretFields = []string{"client_secret", "password", "security_key"}

// Secrets are write-only; a read shows <field>_set and every other field.
func TestConfigSecretsWriteOnly(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{})
	resp := e.ok(logical.ReadOperation, "config/mwi", nil)
	for _, f := range mwiSecretFields {
		if _, has := resp.Data[f]; has {
			t.Fatalf("read returned secret field %s", f)
		}
		if resp.Data[f+"_set"] != true {
			t.Fatalf("%s_set = %v, want true", f, resp.Data[f+"_set"])
		}
	}
	for _, v := range resp.Data {
		if s, ok := v.(string); ok && (strings.Contains(s, "s3cret") || s == mwiPassword || s == mwiSecurityKey) {
			t.Fatalf("read leaked a secret: %v", resp.Data)
		}
	}
	if resp.Data["username"] != mwiUser || resp.Data["access_code"] != mwiAccessCode || resp.Data["client_auth"] != "basic" {
		t.Fatalf("read misses plain fields: %v", resp.Data)
	}
}

// An update that omits a secret keeps it; the token still works.
func TestConfigUpdateKeepsSecrets(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{"request_timeout": 5})
	tok := e.creds("mwi").Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("after a partial update the stored secrets no longer work")
	}
}

// Moving an endpoint requires the secrets again, so that whoever may update
// a config cannot send the stored secret to a server of their choosing.
func TestConfigURLChangeNeedsSecrets(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{})
	msg := e.fails(logical.UpdateOperation, "config/mwi", map[string]any{"token_url": "https://evil.example/token"}, "written again")
	for _, f := range mwiSecretFields {
		if !strings.Contains(msg, f) {
			t.Fatalf("error %q does not name %s", msg, f)
		}
	}
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{"token_url": "https://idp.example/token",
		"client_secret": "x", "password": "y", "security_key": "z"})
}

// A change of client or operator drops tokens minted for the former one.
func TestConfigIdentityChangeDropsToken(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{})
	first := e.creds("mwi").Data["access_token"]
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{"request_timeout": 5})
	if e.creds("mwi").Data["access_token"] != first {
		t.Fatal("a change that keeps the identity must keep the token")
	}
	e.ok(logical.UpdateOperation, "config/mwi", map[string]any{"username": "other"})
	if raw, _ := e.storage.Get(context.Background(), "tokens/role/mwi"); raw != nil {
		t.Fatal("a new operator must drop the cached token from storage")
	}
	_ = idp
}

func TestConfigAndRoleLists(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{})
	if keys := e.ok(logical.ListOperation, "config/", nil).Data["keys"].([]string); len(keys) != 1 || keys[0] != "mwi" {
		t.Fatalf("config list %v", keys)
	}
	if keys := e.ok(logical.ListOperation, "roles/", nil).Data["keys"].([]string); len(keys) != 1 || keys[0] != "mwi" {
		t.Fatalf("role list %v", keys)
	}
	e.ok(logical.DeleteOperation, "config/mwi", nil)
	e.fails(logical.ReadOperation, "creds/mwi", nil, `config "mwi", which does not exist`)
}

// Bad input gets a 400 naming the field, and nothing is stored.
func TestBadInput(t *testing.T) {
	good := map[string]any{"token_url": "https://idp.example/token", "client_id": "c", "client_secret": "s"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	configCases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"unknown provider", with("provider", "okta-ish"), "provider"},
		{"token_url not a URL", with("token_url", "not a url"), "token_url"},
		{"token_url ftp", with("token_url", "ftp://idp.example/token"), "token_url"},
		{"token_url http remote", with("token_url", "http://idp.example/token"), "token_url"},
		{"token_url with user info", with("token_url", "https://u:p@idp.example/token"), "token_url"},
		{"auth_url relative", with("auth_url", "/authorize"), "auth_url"},
		{"missing client_id", with("client_id", nil), "client_id"},
		{"missing client_secret", with("client_secret", nil), "client_secret"},
		{"bad client_auth", with("client_auth", "jwt"), "client_auth"},
		{"negative request_timeout", with("request_timeout", -1), "request_timeout"},
		{"huge request_timeout", with("request_timeout", 3600), "request_timeout"},
		{"negative default_token_ttl", with("default_token_ttl", "-5s"), "default_token_ttl"},
		{"request_timeout not a duration", with("request_timeout", "soon"), "request_timeout"},
		{"bad ca_cert", with("ca_cert", "not pem"), "ca_cert"},
		{"scope with a backslash", with("scopes", `read\write`), "scopes"},
		{"unknown field", with("client_secert", "x"), "client_secert"},
		{"mwi without operator", with("provider", "mwi", "username", "u"), "access_code"},
		{"mwi without password", with("provider", "mwi", "access_code", "1", "username", "u", "security_key", "k"), "password"},
		{"mwi backslash in username", with("provider", "mwi", "access_code", "1", "username", `a\b`, "security_key", "k", "password", "p"), "backslash"},
		{"myid without token_url", with("provider", "myid", "token_url", nil), "token_url"},
	}
	for _, c := range configCases {
		t.Run("config/"+c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.fails(logical.UpdateOperation, "config/x", c.data, c.want)
			if raw, _ := e.storage.Get(context.Background(), "config/x"); raw != nil {
				t.Fatal("a refused config was stored")
			}
		})
	}
	roleCases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"missing config", map[string]any{}, "config"},
		{"config does not exist", map[string]any{"config": "nope"}, `no config named "nope"`},
		{"unknown grant", map[string]any{"config": "c", "grant_type": "implicit"}, "grant_type"},
		{"password grant without operator", map[string]any{"config": "c", "grant_type": "password"}, "grant_type"},
		{"grant not supported by preset", map[string]any{"config": "mt", "grant_type": "password"}, "does not support"},
		{"negative ttl", map[string]any{"config": "c", "ttl": -1}, "ttl"},
		{"negative min_ttl", map[string]any{"config": "c", "min_ttl": -60}, "min_ttl"},
		{"ttl above max_ttl", map[string]any{"config": "c", "ttl": 120, "max_ttl": 60}, "ttl"},
		{"reserved extra param", map[string]any{"config": "c", "extra_params": map[string]any{"client_secret": "x"}}, "extra_params"},
		{"extra params not pairs", map[string]any{"config": "c", "extra_params": "audience"}, "extra_params"},
		{"scope with a quote", map[string]any{"config": "c", "scopes": `a"b`}, "scopes"},
		{"unknown field", map[string]any{"config": "c", "scope": "x"}, "scope"},
	}
	for _, c := range roleCases {
		t.Run("roles/"+c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config/c", good)
			e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "client_id": "c", "client_secret": "s"})
			e.fails(logical.UpdateOperation, "roles/x", c.data, c.want)
			if raw, _ := e.storage.Get(context.Background(), "roles/x"); raw != nil {
				t.Fatal("a refused role was stored")
			}
		})
	}
}

// Preset defaults are filled and shown: MicroTek's token_url and scope.
func TestPresetDefaults(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "client_id": "c", "client_secret": "s"})
	d := e.ok(logical.ReadOperation, "config/mt", nil).Data
	if d["token_url"] != "https://idp.mclabs.com/connect/token" || d["client_auth"] != "post" || strings.Join(d["scopes"].([]string), ",") != "public-api" {
		t.Fatalf("MicroTek defaults not applied: %v", d)
	}
	e.ok(logical.UpdateOperation, "config/my", map[string]any{"provider": "myid", "token_url": "https://myid.example/web.oauth2/connect/token", "client_id": "c", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "roles/my", map[string]any{"config": "my"})
	if g := e.ok(logical.ReadOperation, "roles/my", nil).Data["grant_type"]; g != "authorization_code" {
		t.Fatalf("MyID role grant %v, want authorization_code", g)
	}
	e.fails(logical.ReadOperation, "creds/my", nil, "needs a login")
}

// An update with an invalid token_url is refused for the URL, naming the
// field, before the rule that moving an endpoint needs the secrets again.
func TestConfigUpdateNamesTheBadURL(t *testing.T) {
	e := newTestEnv(t)
	_, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s"})
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "app", "client_secret": "s"})
	for _, bad := range []string{"not a url", "ftp://idp.example/token", "http://idp.example/token"} {
		msg := e.fails(logical.UpdateOperation, "config/c", map[string]any{"token_url": bad}, "token_url")
		if strings.Contains(msg, "client_secret") {
			t.Errorf("token_url %q: error %q is about the secrets, not the URL", bad, msg)
		}
	}
}

// A new client certificate re-targets where the secrets go, as a new URL
// does: the key must be written again with it.
func TestConfigClientCertChangeNeedsSecrets(t *testing.T) {
	e := newTestEnv(t)
	cert, key := testkeys.ClientCert(t)
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": "https://127.0.0.1:1/token", "client_id": "app",
		"client_auth": "tls_client_auth", "tls_client_cert": cert, "tls_client_key": key})
	cert2, key2 := testkeys.ClientCert(t)
	e.fails(logical.UpdateOperation, "config/c", map[string]any{"tls_client_cert": cert2}, "tls_client_key")
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"tls_client_cert": cert2, "tls_client_key": key2})
}

// Scopes are taken separated by spaces or commas, as Screening Eagle's
// document writes them, on configs and roles alike.
func TestScopesSeparatedBySpacesOrCommas(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: "se+/:%é", IDTokens: true})
	e.ok(logical.UpdateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": url, "client_id": "se", "client_secret": "se+/:%é",
		"scopes": "openid email, profile"})
	want := []string{"openid", "email", "profile"}
	if got := e.ok(logical.ReadOperation, "config/se", nil).Data["scopes"]; !slices.Equal(got.([]string), want) {
		t.Fatalf("config scopes %v, want %v", got, want)
	}
	e.ok(logical.UpdateOperation, "roles/inspect", map[string]any{"config": "se", "scopes": "openid email profile inspect"})
	want = []string{"openid", "email", "profile", "inspect"}
	if got := e.ok(logical.ReadOperation, "roles/inspect", nil).Data["scopes"]; !slices.Equal(got.([]string), want) {
		t.Fatalf("role scopes %v, want %v", got, want)
	}
	if scope := e.creds("inspect").Data["scope"]; scope != "openid email profile inspect" {
		t.Fatalf("granted scope %v", scope)
	}
	if sent := idp.LastRequest().Form.Get("scope"); sent != "openid email profile inspect" {
		t.Fatalf("sent scope %q", sent)
	}
	e.fails(logical.UpdateOperation, "roles/inspect", map[string]any{"scopes": `openid "email"`}, "scopes")
}

// Deleting a config that roles still name says so: the roles' reads fail
// from now on, and the token they shared was dropped (revoked at the IdP
// where it has a revocation endpoint) under the leases already handed out.
func TestConfigDeleteWarnsOfItsRoles(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mt"})
	m.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "mt"})
	m.creds("a")
	resp := m.ok(logical.DeleteOperation, "config/mt", nil)
	if resp == nil || len(resp.Warnings) == 0 {
		t.Fatal("deleting a config two roles name gave no warning")
	}
	if w := strings.Join(resp.Warnings, " "); !strings.Contains(w, "a, b") || !strings.Contains(w, "lease") {
		t.Fatalf("warning %q: want the roles named and the leases mentioned", w)
	}
	m.ok(logical.UpdateOperation, "config/other", map[string]any{"token_url": m.url, "client_id": "other", "client_secret": "s"})
	if resp := m.ok(logical.DeleteOperation, "config/other", nil); resp != nil && len(resp.Warnings) != 0 {
		t.Fatalf("deleting an unused config warned: %v", resp.Warnings)
	}
}

// discoveredDevice makes the std IdP's metadata name device as its device
// authorization endpoint (everything else on the IdP's loopback server).
func discoveredDevice(idp *stdIdP, device string) {
	idp.SetMetadata(func(base string) string {
		return `{"issuer":"` + base + `","token_endpoint":"` + base + idp.TokenPath() + `",` +
			`"token_endpoint_auth_methods_supported":["client_secret_basic"],"device_authorization_endpoint":"` + device + `"}`
	})
}

// device-code sends the client secret to the discovered device endpoint, so
// the config write refuses one in plain http off loopback, as it refuses
// such a token endpoint. The endpoint (idp.example.com) is never contacted:
// the write reads the metadata only, from loopback.
func TestConfigRefusesAnInsecureDiscoveredDeviceEndpoint(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret})
	write := map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret}
	discoveredDevice(idp, "http://idp.example.com/device")
	msg := e.fails(logical.UpdateOperation, "config/dev", write, "issuer: ")
	if !strings.Contains(msg, "device_authorization_endpoint") || !strings.Contains(msg, "loopback") {
		t.Fatalf("error %q does not name device_authorization_endpoint and why", msg)
	}
	if resp := e.ok(logical.ReadOperation, "config/dev", nil); resp != nil {
		t.Fatal("a refused config was stored")
	}
	discoveredDevice(idp, idp.srv.URL+"/device")
	e.ok(logical.UpdateOperation, "config/dev", write)
}

// allowed_hosts covers the discovered device endpoint like every other
// endpoint the secrets go to.
func TestConfigRefusesADiscoveredDeviceEndpointOutsideAllowedHosts(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret})
	e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "127.0.0.1"})
	write := map[string]any{"issuer": idp.srv.URL, "client_id": "c1", "client_secret": stdSecret}
	discoveredDevice(idp, "https://device.example.net/device")
	msg := e.fails(logical.UpdateOperation, "config/dev", write, "issuer: ")
	if !strings.Contains(msg, `device_authorization_endpoint: host "device.example.net" is not in the mount's allowed_hosts`) {
		t.Fatalf("error %q does not name device_authorization_endpoint and its host", msg)
	}
	discoveredDevice(idp, idp.srv.URL+"/device")
	e.ok(logical.UpdateOperation, "config/dev", write)
}

// opFaults fails the failAt-th Put or Delete (from 1) of a key under one of
// prefixes, once; every other operation passes. faultyStorage counts Puts
// of every key and cannot fail a Delete.
type opFaults struct {
	logical.Storage
	prefixes []string
	mu       sync.Mutex
	failAt   int // 0: fail nothing
	seen     int
	failed   bool
}

var errOpFault = errors.New("storage unavailable (injected)")

func (s *opFaults) arm(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAt, s.seen, s.failed = n, 0, false
}

// fails counts an operation on key and says whether it is the one to fail.
func (s *opFaults) fails(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt == 0 || !slices.ContainsFunc(s.prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
		return false
	}
	s.seen++
	if s.seen != s.failAt {
		return false
	}
	s.failed = true
	return true
}

func (s *opFaults) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.fails(e.Key) {
		return errOpFault
	}
	return s.Storage.Put(ctx, e)
}

func (s *opFaults) Delete(ctx context.Context, key string) error {
	if s.fails(key) {
		return errOpFault
	}
	return s.Storage.Delete(ctx, key)
}

// configAndIndex are the keys a config write or delete changes besides
// tokens: the config and its client index entries.
var configAndIndex = []string{configPrefix, clientIndexPrefix}

// eachConfigStorageFailure runs op on a fresh MicroTek mount once per
// storage write of op to a config or the client index, failing that write,
// then check on the mount as the failure left it.
func eachConfigStorageFailure(t *testing.T, op func(*microTekEnv), check func(*microTekEnv)) {
	for n, more := 1, true; more; n++ {
		t.Run(fmt.Sprintf("write %d fails", n), func(t *testing.T) {
			m := setupMicroTek(t, time.Hour)
			faults := &opFaults{Storage: m.storage, prefixes: configAndIndex}
			m.storage = faults
			faults.arm(n)
			op(m)
			more = faults.failed // else op made fewer than n such writes
			faults.arm(0)
			check(m)
		})
	}
}

// requireClientsHeld: every stored config still holds its client, so a
// second config of that single-active client is refused.
func requireClientsHeld(m *microTekEnv) {
	m.t.Helper()
	names, err := m.storage.List(context.Background(), configPrefix)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, name := range names {
		c, err := loadConfigEntry(context.Background(), m.storage, name)
		if err != nil || c == nil {
			m.t.Fatalf("config %q: %v", name, err)
		}
		m.fails(logical.UpdateOperation, "config/probe", map[string]any{"provider": "microtek", "token_url": c.TokenURL,
			"client_id": c.ClientID, "client_secret": "z"}, fmt.Sprintf("config %q already holds client", name))
	}
}

// heldBy names the stored config holding client, "" when none does.
func heldBy(m *microTekEnv, client string) string {
	m.t.Helper()
	names, _ := m.storage.List(context.Background(), configPrefix)
	for _, name := range names {
		if c, _ := loadConfigEntry(context.Background(), m.storage, name); c != nil && c.ClientID == client {
			return name
		}
	}
	return ""
}

const mtOtherClient = "22222222-0000-0000-0000-000000000000"

// A config write that fails part-way never leaves storage holding a config
// the client index does not list; an index entry left naming a config that
// does not hold that client refuses nothing.
func TestConfigWriteFailureKeepsTheClientIndexed(t *testing.T) {
	for name, write := range map[string]func(*microTekEnv) (string, map[string]any){
		"new config": func(m *microTekEnv) (string, map[string]any) {
			return "config/other", map[string]any{"provider": "microtek", "token_url": m.url, "client_id": mtOtherClient, "client_secret": "x"}
		},
		"client change": func(m *microTekEnv) (string, map[string]any) {
			return "config/mt", map[string]any{"client_id": mtOtherClient, "client_secret": "y"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			eachConfigStorageFailure(t, func(m *microTekEnv) {
				path, data := write(m)
				_, _ = m.do(logical.UpdateOperation, path, data)
			}, func(m *microTekEnv) {
				requireClientsHeld(m)
				for _, client := range []string{mtClient, mtOtherClient} {
					if heldBy(m, client) == "" {
						m.ok(logical.UpdateOperation, "config/free", map[string]any{"provider": "microtek", "token_url": m.url, "client_id": client, "client_secret": "z"})
						m.ok(logical.DeleteOperation, "config/free", nil)
					}
				}
			})
		})
	}
}

// A config delete that fails part-way either keeps the config, still
// indexed, or removes it, after which its client is free.
func TestConfigDeleteFailureKeepsTheClientIndexed(t *testing.T) {
	eachConfigStorageFailure(t, func(m *microTekEnv) {
		_, _ = m.do(logical.DeleteOperation, "config/mt", nil)
	}, func(m *microTekEnv) {
		requireClientsHeld(m)
		if heldBy(m, mtClient) == "" {
			m.ok(logical.UpdateOperation, "config/again", map[string]any{"provider": "microtek", "token_url": m.url, "client_id": mtClient, "client_secret": "z"})
		}
	})
}

// A generic config can say single_active_token=true; the read shows it, and
// its roles share one token.
func TestSingleActiveTokenConfigField(t *testing.T) {
	e := newTestEnv(t)
	_, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s", Scopes: []string{"r"}})
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "app", "client_secret": "s", "single_active_token": true})
	if e.ok(logical.ReadOperation, "config/c", nil).Data["single_active_token"] != true {
		t.Fatal("the read does not show single_active_token")
	}
	e.ok(logical.UpdateOperation, "roles/one", map[string]any{"config": "c", "scopes": "r"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]any{"config": "c", "scopes": "r"})
	if e.creds("one").Data["access_token"] != e.creds("two").Data["access_token"] {
		t.Fatal("roles of a single-active config do not share the token")
	}
	mt := setupMicroTek(t, time.Hour)
	if mt.ok(logical.ReadOperation, "config/mt", nil).Data["single_active_token"] != true {
		t.Fatal("provider=microtek does not set single_active_token")
	}
	resp := mt.ok(logical.UpdateOperation, "config/mt", map[string]any{"single_active_token": false})
	if resp == nil || len(resp.Warnings) == 0 {
		t.Fatal("turning single_active_token off drops the shared token, and the answer must say so")
	}
}
