package idptokens

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Rotation: the IdP still knows only the old secret; after rotate the
// current (new) secret is refused and the previous one serves, counted.
// Clearing the previous one leaves only the refused secret.
func TestRotateClientSecret(t *testing.T) {
	e := newTestEnv(t)
	idp := startStdIdP(t, fakeidp.Options{ClientID: "c1", ClientSecret: stdSecret, Scopes: []string{"api"}})
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token", "client_auth": "post",
		"client_id": "c1", "client_secret": stdSecret, "scopes": "api"})
	e.ok(logical.UpdateOperation, "roles/std", map[string]any{"config": "std"})
	first := e.creds("std").Data["access_token"]
	gen := e.entry("std").Generation

	const next = "next-secret-5678"
	resp := e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": next})
	if resp.Data["previous_client_secret_set"] != true || resp.Data["client_secret_set"] != true {
		t.Fatalf("rotate answered %v", resp.Data)
	}
	for _, v := range resp.Data {
		if s, ok := v.(string); ok && (s == next || s == stdSecret) {
			t.Fatal("rotate answer shows a secret")
		}
	}
	if e.entry("std").Generation != gen {
		t.Fatal("rotation changed the generation")
	}
	if e.creds("std").Data["access_token"] != first {
		t.Fatal("rotation dropped the cached token")
	}
	read := e.ok(logical.ReadOperation, "config/std", nil).Data
	if read["previous_client_secret_set"] != true {
		t.Fatalf("read = %v", read)
	}
	before := idp.TokenRequests()
	e.ok(logical.UpdateOperation, "creds/std/drop", nil)
	tok := e.creds("std").Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("token via the previous secret not valid")
	}
	reqs := idp.Requests()[before:]
	if len(reqs) != 2 || reqs[0].Form.Get("client_secret") != next || reqs[1].Form.Get("client_secret") != stdSecret {
		t.Fatalf("want the new then the previous secret, got %d requests", len(reqs))
	}
	if got := e.b.metrics.Snapshot(0).Configs["std"].SecretFallbacks; got["success"] != 1 || got["failure"] != 0 {
		t.Fatalf("secret_fallbacks = %v", got)
	}

	// Clearing the previous secret: only the new one, which the IdP refuses.
	e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"clear_previous": true})
	if e.entry("std").PreviousClientSecret != "" {
		t.Fatal("previous secret kept")
	}
	e.ok(logical.UpdateOperation, "creds/std/drop", nil)
	msg := e.fails(logical.ReadOperation, "creds/std", nil, "invalid_client")
	if strings.Contains(msg, next) || strings.Contains(msg, stdSecret) {
		t.Fatalf("error shows a secret: %s", msg)
	}

	// Both refused: one error, counted as a failed fallback.
	e.ok(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": "third-secret-999"})
	msg = e.fails(logical.ReadOperation, "creds/std", nil, "previous credential was refused too")
	if strings.Contains(msg, next) || strings.Contains(msg, "third-secret-999") {
		t.Fatalf("error shows a secret: %s", msg)
	}
	if got := e.b.metrics.Snapshot(0).Configs["std"].SecretFallbacks; got["failure"] != 1 {
		t.Fatalf("secret_fallbacks = %v", got)
	}

	e.fails(logical.UpdateOperation, "config/std/rotate", nil, "give client_secret or private_key")
	e.fails(logical.UpdateOperation, "config/std/rotate", map[string]any{"client_secret": "third-secret-999"}, "current one already")
	e.fails(logical.UpdateOperation, "config/nope/rotate", map[string]any{"client_secret": "x"}, "no config")
	// Moving an endpoint forgets the previous secret.
	e.ok(logical.UpdateOperation, "config/std", map[string]any{"token_url": idp.srv.URL + "/connect/token?x=1", "client_secret": stdSecret})
	if e.entry("std").PreviousClientSecret != "" {
		t.Fatal("previous secret survived an endpoint move")
	}
}
