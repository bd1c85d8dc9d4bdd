package idptokens

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
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
