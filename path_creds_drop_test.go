package idptokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// MicroTek's shared token: drop says every role of the config is affected.
func TestDropSharedToken(t *testing.T) {
	e := newTestEnv(t)
	idp, tokenURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: "mt", ClientSecret: stdSecret})
	e.ok(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": tokenURL, "client_id": "mt", "client_secret": stdSecret})
	e.ok(logical.UpdateOperation, "roles/one", map[string]any{"config": "mt"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]any{"config": "mt"})
	tok := e.creds("one").Data["access_token"]
	resp := e.ok(logical.UpdateOperation, "creds/two/drop", nil)
	if resp.Data["token_key"] != "config/mt" || len(resp.Warnings) < 1 || !strings.Contains(resp.Warnings[0], "one, two") {
		t.Fatalf("drop answered %v %v", resp.Data, resp.Warnings)
	}
	if e.creds("one").Data["access_token"] == tok {
		t.Fatal("shared token not dropped")
	}
	_ = idp
}
