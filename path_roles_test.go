package idptokens

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// A role deleted and written again asking for something else than the
// shared token of its single-active config answers: the next read mints
// and kills that token under its leases, and the write's answer says so.
func TestRoleWrittenAgainWarnsOfTheSharedToken(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mt", "scopes": "public-api"})
	m.creds("a")
	m.ok(logical.DeleteOperation, "roles/a", nil)
	resp := m.ok(logical.UpdateOperation, "roles/a", map[string]any{"config": "mt", "scopes": "public-api,reports"})
	if resp == nil || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "shared token") {
		t.Fatalf("rewritten role asking for other scopes: warnings %v, want one about the shared token", resp)
	}
	// Written again as it was: the held token still answers it, no warning.
	m.ok(logical.DeleteOperation, "roles/a", nil)
	m.ok(logical.UpdateOperation, "roles/b", map[string]any{"config": "mt", "scopes": "public-api"})
	if resp := m.ok(logical.UpdateOperation, "roles/c", map[string]any{"config": "mt", "scopes": "public-api"}); resp != nil && len(resp.Warnings) > 0 {
		t.Fatalf("a role asking what the shared token answers warned: %v", resp.Warnings)
	}
}

// A role deleted while its token is being minted leaves no token behind:
// the new one is removed from storage and revoked at the IdP.
func TestRoleDeletedDuringMintLeavesNoToken(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "app", ClientSecret: "s", Scopes: []string{"r"}, RefreshTokens: true})
	base := strings.TrimSuffix(url, idp.TokenPath())
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "revocation_url": base + "/connect/revocation", "client_id": "app", "client_secret": "s"})
	e.ok(logical.UpdateOperation, "roles/gone", map[string]any{"config": "c", "scopes": "r"})
	idp.SetDelay(300 * time.Millisecond)
	done := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.do(logical.ReadOperation, "creds/gone", nil)
		done <- resp
	}()
	time.Sleep(100 * time.Millisecond) // the mint is in flight
	e.ok(logical.DeleteOperation, "roles/gone", nil)
	resp := <-done
	if resp == nil || !resp.IsError() || !strings.Contains(respErr(resp), `no role named "gone"`) {
		t.Fatalf("the read racing the delete answered %v", resp)
	}
	if keys := e.tokenKeys(); len(keys) != 0 {
		t.Fatalf("storage holds %v after the delete", keys)
	}
	if idp.TokenRequests() != 1 {
		t.Fatalf("%d token requests", idp.TokenRequests())
	}
	for _, tok := range idp.IssuedAccessTokens() {
		if idp.Valid(tok) {
			t.Fatal("the token minted for the deleted role was not revoked")
		}
	}
}

// A role change of scopes drops its token; a change of ttl keeps it.
func TestRoleChangeDropsToken(t *testing.T) {
	e := newTestEnv(t)
	idp := e.setupMWI(fakeidp.Options{Scopes: []string{"test_api", "other_api"}})
	first := e.creds("mwi").Data["access_token"]
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"ttl": 60})
	if e.creds("mwi").Data["access_token"] != first {
		t.Fatal("a ttl change must keep the token")
	}
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"scopes": "other_api"})
	resp := e.creds("mwi")
	if resp.Data["access_token"] == first || resp.Data["scope"] != "other_api" || idp.TokenRequests() != 2 {
		t.Fatalf("a scope change must mint for the new scope: %v", resp.Data["scope"])
	}
}
