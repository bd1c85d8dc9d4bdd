package idptokens

import (
	"context"
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
