package idptokens

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Hints name the mount the request came in on.
func TestHintsNameTheMount(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	resp, err := a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "creds/myid", Storage: a.storage, MountPoint: "team-a/tokens/",
	})
	if err != nil || !strings.Contains(respErr(resp), "vault write -f team-a/tokens/auth-url/myid") {
		t.Fatalf("needs-login hint: %v %q", err, respErr(resp))
	}
	resp, _ = a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "roles/r", Storage: a.storage, MountPoint: "team-a/tokens/", Data: map[string]any{"config": "nope"},
	})
	if !strings.Contains(respErr(resp), "write team-a/tokens/config/nope first") {
		t.Fatalf("missing-config hint: %q", respErr(resp))
	}
}

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

// The storage layout is complete and its seal-wrap flags are what Vault is
// told: flows that write every kind of entry (configs with every secret, a
// single-active client's index, roles, a pending code-flow login, a device
// login, a key made in Vault, settings, cached tokens with refresh tokens)
// write only keys of the layout, write each of its areas, and every entry
// that holds a secret (a client secret, password or key, a PKCE verifier, a
// device code, a token) lies under a seal-wrapped one.
func TestStorageLayout(t *testing.T) {
	if got, want := newTestEnv(t).b.PathsSpecial.SealWrapStorage, sealWrapStorage(); !slices.Equal(got, want) || len(want) == 0 {
		t.Fatalf("SealWrapStorage %v, want the layout's %v", got, want)
	}
	a := setupOAuth2Refresh(t)
	e := a.testEnv
	cert, key := testkeys.ClientCert(t)
	_, mtURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: mtClient, ClientSecret: mtClientSecret})
	flows := []func(){
		func() {
			e.ok(logical.UpdateOperation, "config/secrets", map[string]any{"provider": "mwi", "token_url": "https://idp.example/connect/token",
				"client_id": "c", "client_secret": "s3cret-cs", "access_code": "ac", "username": "u", "security_key": "s3cret-sk", "password": "s3cret-pw"})
		},
		func() {
			e.ok(logical.UpdateOperation, "config/mtls", map[string]any{"token_url": "https://idp.example/token", "client_id": "c",
				"client_auth": "tls_client_auth", "tls_client_cert": cert, "tls_client_key": key})
		},
		func() {
			e.ok(logical.UpdateOperation, "config/secrets/rotate", map[string]any{"client_secret": "s3cret-cs2"})
		},
		func() {
			e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": mtURL, "client_id": mtClient, "client_secret": mtClientSecret})
			e.ok(logical.UpdateOperation, "roles/mt", map[string]any{"config": "mt"})
			e.creds("mt")
		},
		func() { a.callbackGET(a.login("app")); a.creds("app") },
		func() { a.begin("app", nil) },
		func() {
			deviceEnv(t, e, fakeidp.DeviceOptions{})
			e.ok(logical.UpdateOperation, "device-code/tv", nil)
		},
		func() {
			e.ok(logical.UpdateOperation, "config/made", map[string]any{"token_url": "https://idp.example/token", "client_id": "c",
				"client_auth": "private_key_jwt", "generate_key": true})
		},
		func() {
			e.ok(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "127.0.0.1,idp.example"})
		},
	}
	secrets := []string{"s3cret-cs", "s3cret-sk", "s3cret-pw", "s3cret-cs2", mtClientSecret, "app-secret", "tv-secret", "PRIVATE KEY"}
	secretFieldNames := []string{"code_verifier", "device_code", "refresh_token", "access_token", "client_secret", "password", "private_key", "tls_client_key"}
	written := map[string]bool{}
	before := map[string]string{} // the setup's config and role count too
	for i, flow := range flows {
		if i > 0 {
			before = storageEntries(t, e)
		}
		flow()
		for k, v := range storageEntries(t, e) {
			if old, ok := before[k]; ok && old == v {
				continue
			}
			written[k] = true
			area := ""
			for _, ar := range storageLayout {
				if k == ar.key || (strings.HasSuffix(ar.key, "/") && strings.HasPrefix(k, ar.key)) {
					area = ar.key
				}
			}
			if area == "" {
				t.Errorf("flow %d wrote %q, which the storage layout does not name", i, k)
			}
			holdsSecret := slices.ContainsFunc(secrets, func(s string) bool { return strings.Contains(v, s) })
			var fields map[string]any
			if json.Unmarshal([]byte(v), &fields) == nil {
				holdsSecret = holdsSecret || slices.ContainsFunc(secretFieldNames, func(f string) bool { s, _ := fields[f].(string); return s != "" })
			}
			if holdsSecret && !sealWrapped(e.b.PathsSpecial.SealWrapStorage, k) {
				t.Errorf("flow %d wrote a secret at %q, which is not seal-wrapped", i, k)
			}
		}
	}
	for _, ar := range storageLayout {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(written)), func(k string) bool {
			return k == ar.key || (strings.HasSuffix(ar.key, "/") && strings.HasPrefix(k, ar.key))
		}) {
			t.Errorf("no flow wrote the layout's %q (%s): the test does not walk it", ar.key, ar.holds)
		}
	}
}
