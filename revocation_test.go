package idptokens

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Drop, role delete and config delete revoke the dropped tokens (refresh
// token first, then access token); a failing revocation does not block.
func TestRevocationOnDropAndDelete(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token",
		"revocation_url": idp.srv.URL + "/connect/revocation", "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "std"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "std"})

	tok := e.creds("a").Data["access_token"].(string)
	resp := e.ok(logical.UpdateOperation, "creds/a/drop", nil)
	if resp.Data["dropped"] != true || len(resp.Warnings) != 0 {
		t.Fatalf("drop answered %v %v", resp.Data, resp.Warnings)
	}
	revs := idp.revocations()
	if len(revs) != 2 || revs[0].Get("token_type_hint") != "refresh_token" || revs[1].Get("token_type_hint") != "access_token" || revs[1].Get("token") != tok {
		t.Fatalf("revocations = %v", revs)
	}
	if idp.Valid(tok) {
		t.Fatal("dropped token still valid")
	}
	if again := e.creds("a").Data["access_token"]; again == tok {
		t.Fatal("drop did not make the next read mint")
	}
	// Dropping nothing is fine.
	e.ok(logical.UpdateOperation, "creds/b/drop", nil)

	// Role delete revokes the role's token.
	tokA := e.creds("a").Data["access_token"].(string)
	e.ok(logical.DeleteOperation, "roles/a", nil)
	if idp.Valid(tokA) {
		t.Fatal("token of a deleted role still valid")
	}
	// Config delete revokes every token of the config.
	tokB := e.creds("b").Data["access_token"].(string)
	n := len(idp.revocations())
	e.ok(logical.DeleteOperation, "config/std", nil)
	if idp.Valid(tokB) || len(idp.revocations()) != n+2 {
		t.Fatalf("config delete: valid=%v, %d revocations", idp.Valid(tokB), len(idp.revocations())-n)
	}

	// A failing revocation endpoint: the drop succeeds with a warning.
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token",
		"revocation_url": idp.srv.URL + "/no-such-endpoint", "client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "std"})
	e.creds("b")
	resp = e.ok(logical.UpdateOperation, "creds/b/drop", nil)
	if resp.Data["dropped"] != true || len(resp.Warnings) == 0 || !strings.Contains(strings.Join(resp.Warnings, " "), "404") {
		t.Fatalf("drop with a failing revocation: %v %v", resp.Data, resp.Warnings)
	}
	if raw, _ := e.storage.Get(context.Background(), "tokens/role/b"); raw != nil {
		t.Fatal("token kept after a failed revocation")
	}
	e.ok(logical.DeleteOperation, "config/std", nil)

	e.fails(logical.UpdateOperation, "creds/nope/drop", nil, "no role")
	// creds/<role> still reads (the drop path does not shadow it).
	e.fails(logical.ReadOperation, "creds/b", nil, "does not exist")
}
