package idptokens

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Admin writes that would make two roles ask differently, or a second
// config for the client, are refused and store nothing.
func TestSingleActiveWritesThatSplitTheTokenAreRefused(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mt"})
	m.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "mt", "scopes": "public-api"})
	before, _ := m.storage.Get(context.Background(), "config/mt")
	msg := m.fails(logical.UpdateOperation, "config/mt", map[string]any{"scopes": "public-api,reports"}, "single_active_token")
	if !strings.Contains(msg, "a") || !strings.Contains(msg, `b`) || !strings.Contains(msg, "] vs [") {
		t.Fatalf("error %q should name the roles on each side", msg)
	}
	after, _ := m.storage.Get(context.Background(), "config/mt")
	if string(before.Value) != string(after.Value) {
		t.Fatal("the refused config write was stored")
	}
	m.fails(logical.UpdateOperation, "roles/b", map[string]any{"scopes": "public-api reports"}, "single_active_token")
	for _, url := range []string{m.url, strings.ToUpper(m.url[:4]) + m.url[4:] + "/"} {
		m.fails(logical.UpdateOperation, "config/mt2", map[string]any{"provider": "microtek", "token_url": url, "client_id": mtClient, "client_secret": "x"}, "client_id")
	}
	if raw, _ := m.storage.Get(context.Background(), "config/mt2"); raw != nil {
		t.Fatal("a second config for the client was stored")
	}
	// Another client of the same IdP is another client.
	m.ok(logical.UpdateOperation, "config/mt2", map[string]any{"provider": "microtek", "token_url": m.url, "client_id": "11111111-0000-0000-0000-000000000000", "client_secret": "x"})
}
