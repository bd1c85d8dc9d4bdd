package idptokens

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The client index follows configs: a delete frees the client, a new
// client_id moves the config, and configs stored before the index existed
// are found too.
func TestClientIndexFollowsConfigs(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	second := map[string]any{"provider": "microtek", "token_url": m.url, "client_id": mtClient, "client_secret": "x"}
	m.fails(logical.UpdateOperation, "config/mt2", second, "client_id")

	m.ok(logical.UpdateOperation, "config/mt", map[string]any{"client_id": "22222222-0000-0000-0000-000000000000", "client_secret": "y"})
	m.ok(logical.UpdateOperation, "config/mt2", second) // the client moved away from mt
	m.fails(logical.UpdateOperation, "config/mt3", map[string]any{"provider": "microtek", "token_url": m.url,
		"client_id": "22222222-0000-0000-0000-000000000000", "client_secret": "z"}, `config "mt"`)

	m.ok(logical.DeleteOperation, "config/mt2", nil)
	m.ok(logical.UpdateOperation, "config/mt4", second) // the delete freed the client
}

// A mount upgraded from a version without the index: its stored configs
// are entered on first use, so a duplicate of one of them is refused.
func TestClientIndexBuiltFromStoredConfigs(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	ctx := context.Background()
	keys, err := logical.CollectKeysWithPrefix(ctx, m.storage, clientIndexPrefix)
	if err != nil || len(keys) == 0 {
		t.Fatalf("no index entries after a config write: %v %v", keys, err)
	}
	for _, k := range append(keys, clientIndexBuiltKey) {
		if err := m.storage.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	restarted := newTestEnv(t, onStorage(m.storage))
	restarted.fails(logical.UpdateOperation, "config/again", map[string]any{"provider": "microtek", "token_url": m.url,
		"client_id": mtClient, "client_secret": "x"}, `config "mt"`)
}

// A second config of the same single-active client is refused however its
// token_url is spelled, as long as the IdP would see the same endpoint.
func TestSameClientWhateverTheSpelling(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	u, err := url.Parse(m.url) // http://127.0.0.1:<port>/token
	if err != nil {
		t.Fatal(err)
	}
	for _, spelling := range []string{
		m.url + "/",
		"HTTP://" + strings.ToUpper(u.Host) + u.Path,
		"http://" + u.Host + "/" + u.Path,
		"http://" + u.Host + strings.ToUpper(u.Path), // IdentityServer routes paths case-blind
		m.url + "?tenant=a",
		" " + m.url,
	} {
		t.Run(spelling, func(t *testing.T) {
			m.fails(logical.UpdateOperation, "config/other", map[string]any{"provider": "microtek", "token_url": spelling,
				"client_id": mtClient, "client_secret": "x"}, `config "mt" already holds client`)
		})
	}
	for raw, want := range map[string]string{
		"https://IdP.example:443//connect//token/?a=1": "https://idp.example/connect/token",
		"http://idp.example:80/t":                      "http://idp.example/t",
		"https://idp.example:8443/t":                   "https://idp.example:8443/t",
		"https://idp.example/Connect/Token":            "https://idp.example/connect/token",
	} {
		if got := normalURL(raw); got != want {
			t.Errorf("normalURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// An index built by an older version (other key spellings) is built again
// once, so a duplicate spelled the new way is still found.
func TestClientIndexRebuiltAfterAVersionChange(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	ctx := context.Background()
	keys, _ := logical.CollectKeysWithPrefix(ctx, m.storage, clientIndexPrefix)
	for _, k := range keys {
		if err := m.storage.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.storage.Put(ctx, &logical.StorageEntry{Key: clientIndexBuiltKey, Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	restarted := newTestEnv(t, onStorage(m.storage))
	restarted.fails(logical.UpdateOperation, "config/again", map[string]any{"provider": "microtek", "token_url": m.url + "?x=1",
		"client_id": mtClient, "client_secret": "x"}, `config "mt"`)
}

// An index built before paths were compared case-blind is built again
// once, so a duplicate differing only in the path's case is found.
func TestClientIndexRebuiltWhenPathCaseStopsCounting(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	ctx := context.Background()
	keys, _ := logical.CollectKeysWithPrefix(ctx, m.storage, clientIndexPrefix)
	for _, k := range keys {
		if err := m.storage.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	// "2": the version whose keys kept the path's case.
	if err := m.storage.Put(ctx, &logical.StorageEntry{Key: clientIndexBuiltKey, Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(m.url)
	restarted := newTestEnv(t, onStorage(m.storage))
	restarted.fails(logical.UpdateOperation, "config/again", map[string]any{"provider": "microtek", "token_url": "http://" + u.Host + strings.ToUpper(u.Path),
		"client_id": mtClient, "client_secret": "x"}, `config "mt"`)
}

// discoveredMicroTek is a MicroTek fake serving its discovery metadata on
// loopback: its issuer and its token endpoint.
func discoveredMicroTek(t *testing.T) (idp *fakeidp.Server, issuer, tokenURL string) {
	t.Helper()
	idp, tokenURL = startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: mtClient, ClientSecret: mtClientSecret})
	return idp, strings.TrimSuffix(tokenURL, idp.TokenPath()), tokenURL
}

// A config that finds its token endpoint by discovery holds its client at
// that endpoint: a second single-active config naming the endpoint as
// token_url is refused, whichever is written first, and on a node that
// cannot read the metadata.
func TestSameClientAtADiscoveredTokenEndpoint(t *testing.T) {
	byIssuer := func(issuer string) map[string]any {
		return map[string]any{"provider": "microtek", "issuer": issuer, "client_id": mtClient, "client_secret": mtClientSecret}
	}
	byTokenURL := func(tokenURL string) map[string]any {
		return map[string]any{"provider": "microtek", "token_url": tokenURL, "client_id": mtClient, "client_secret": mtClientSecret}
	}

	t.Run("issuer first", func(t *testing.T) {
		e := newTestEnv(t)
		idp, issuer, tokenURL := discoveredMicroTek(t)
		e.ok(logical.UpdateOperation, "config/a", byIssuer(issuer))
		e.fails(logical.UpdateOperation, "config/b", byTokenURL(strings.ToUpper(tokenURL)), `client_id: config "a" already holds client`)
		read := e.ok(logical.ReadOperation, "config/a", nil).Data
		if read["discovered_token_url"] != tokenURL || read["token_url"] != "" {
			t.Fatalf("read = %v, want the discovered token endpoint shown apart from token_url", read)
		}

		// Another node compares with the stored endpoint, without the metadata.
		idp.SetMetadata(func(string) string { return "" })
		other := newTestEnv(t, onStorage(e.storage))
		other.fails(logical.UpdateOperation, "config/b", byTokenURL(tokenURL), `client_id: config "a" already holds client`)
	})

	t.Run("token_url first", func(t *testing.T) {
		e := newTestEnv(t)
		_, issuer, tokenURL := discoveredMicroTek(t)
		e.ok(logical.UpdateOperation, "config/b", byTokenURL(tokenURL))
		e.fails(logical.UpdateOperation, "config/a", byIssuer(issuer), `client_id: config "b" already holds client`)
	})

	t.Run("not written by users", func(t *testing.T) {
		e := newTestEnv(t)
		_, issuer, _ := discoveredMicroTek(t)
		data := byIssuer(issuer)
		data["discovered_token_url"] = "https://elsewhere.example/token"
		e.fails(logical.UpdateOperation, "config/a", data, "unknown field(s): discovered_token_url")
	})
}

// A config stored before the discovered endpoint was kept has none: it is
// found by the endpoint from its next write on.
func TestSameClientAtADiscoveredTokenEndpointAfterTheNextWrite(t *testing.T) {
	e := newTestEnv(t)
	_, issuer, tokenURL := discoveredMicroTek(t)
	e.ok(logical.UpdateOperation, "config/a", map[string]any{"provider": "microtek", "issuer": issuer, "client_id": mtClient, "client_secret": mtClientSecret})
	ctx := context.Background()
	stored, err := loadConfigEntry(ctx, e.storage, "a")
	if err != nil {
		t.Fatal(err)
	}
	stored.DiscoveredTokenURL = ""
	raw, _ := logical.StorageEntryJSON(configPrefix+"a", stored)
	if err := e.storage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	older := newTestEnv(t, onStorage(e.storage))
	older.ok(logical.UpdateOperation, "config/a", map[string]any{"request_timeout": 10})
	older.fails(logical.UpdateOperation, "config/b", map[string]any{"provider": "microtek", "token_url": tokenURL, "client_id": mtClient, "client_secret": mtClientSecret},
		`client_id: config "a" already holds client`)
}

// One client_id at one issuer is one client, whichever of the server's
// token endpoints a config names or discovers.
func TestSameClientAtOneIssuer(t *testing.T) {
	const iss = "https://idp.example.com"
	cases := []struct {
		name string
		a, b configEntry
		want bool
	}{
		{"discovered and explicit, same endpoint", configEntry{ClientID: "c", Issuer: iss, DiscoveredTokenURL: iss + "/token"},
			configEntry{ClientID: "c", TokenURL: iss + "/Token"}, true},
		{"same issuer, another explicit endpoint", configEntry{ClientID: "c", Issuer: iss, DiscoveredTokenURL: iss + "/token"},
			configEntry{ClientID: "c", Issuer: iss, TokenURL: "https://mtls.idp.example.com/token"}, true},
		{"same issuer, both explicit", configEntry{ClientID: "c", Issuer: iss, TokenURL: iss + "/a"},
			configEntry{ClientID: "c", Issuer: iss, TokenURL: iss + "/b"}, true},
		{"stored before the discovered endpoint was kept", configEntry{ClientID: "c", Issuer: iss},
			configEntry{ClientID: "c", Issuer: iss + "/"}, true},
		{"another client_id", configEntry{ClientID: "c", Issuer: iss, DiscoveredTokenURL: iss + "/token"},
			configEntry{ClientID: "d", TokenURL: iss + "/token"}, false},
		{"other endpoints, no common issuer", configEntry{ClientID: "c", Issuer: iss, DiscoveredTokenURL: iss + "/token"},
			configEntry{ClientID: "c", TokenURL: iss + "/other"}, false},
	}
	for _, c := range cases {
		if got, back := sameClient(&c.a, &c.b), sameClient(&c.b, &c.a); got != c.want || back != c.want {
			t.Errorf("%s: sameClient = %v, %v (both ways), want %v", c.name, got, back, c.want)
		}
	}
}
