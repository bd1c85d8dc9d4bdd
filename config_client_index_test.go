package idptokens

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
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
	restarted := newTestEnvOn(t, m.storage)
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
	restarted := newTestEnvOn(t, m.storage)
	restarted.fails(logical.UpdateOperation, "config/again", map[string]any{"provider": "microtek", "token_url": m.url + "?x=1",
		"client_id": mtClient, "client_secret": "x"}, `config "mt"`)
}
