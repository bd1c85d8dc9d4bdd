package idptokens

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// exchange/<role>: the caller brings the subject token; the answer is
// leased like creds, cached per subject token, and never served to a caller
// with another subject token.
func TestExchangePath(t *testing.T) {
	valid := map[string]bool{"alice-token-123": true, "bob-token-456": true}
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(s string) bool { return valid[s] },
		Audience: []string{"orders"}, TokenTTL: 10 * time.Minute})
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"config": "sts", "grant_type": "token_exchange", "audience": "orders"})
	exchange := func(subject string) *logical.Response {
		t.Helper()
		return e.ok(logical.UpdateOperation, "exchange/orders", map[string]any{"subject_token": subject})
	}
	alice := exchange("alice-token-123")
	aliceTok := alice.Data["access_token"].(string)
	if s, _ := e.sts.SubjectOf(aliceTok); s != "alice-token-123" {
		t.Fatalf("token issued for %q; refusals %v", s, e.sts.Refusals())
	}
	if alice.Secret == nil || leaseTTL(alice) > 10*time.Minute || leaseTTL(alice) < 10*time.Minute-3*time.Second || alice.Secret.Renewable {
		t.Fatalf("answer is not leased for the token's 10m: %+v", alice.Secret)
	}
	bob := exchange("bob-token-456")
	if bob.Data["access_token"] == aliceTok {
		t.Fatal("bob was served alice's exchange")
	}
	if s, _ := e.sts.SubjectOf(bob.Data["access_token"].(string)); s != "bob-token-456" {
		t.Fatalf("bob's token issued for %q", s)
	}
	if again := exchange("alice-token-123"); again.Data["access_token"] != aliceTok || len(e.sts.Requests()) != 2 {
		t.Fatalf("alice again: %d exchanges in all, want her cached token (2 exchanges)", len(e.sts.Requests()))
	}
	// A refused subject: the IdP's words for the config, never the token.
	msg := e.fails(logical.UpdateOperation, "exchange/orders", map[string]any{"subject_token": "mallory-token-789"}, `config "sts"`)
	if !strings.Contains(msg, "subject_token is not an active access token") || strings.Contains(msg, "mallory-token-789") {
		t.Errorf("refusal %q: want the IdP's invalid_grant, without the subject token", msg)
	}
	// No storage entry holds a subject token or the exchanged token.
	keys, _ := logical.CollectKeys(context.Background(), e.storage)
	for _, k := range keys {
		entry, _ := e.storage.Get(context.Background(), k)
		for _, secret := range []string{"alice-token-123", aliceTok} {
			if strings.Contains(k, secret) || strings.Contains(string(entry.Value), secret) {
				t.Errorf("storage entry %s holds %q", k, secret)
			}
		}
	}
}

func TestExchangePathRefusals(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{})
	e.ok(logical.UpdateOperation, "roles/caller", map[string]any{"config": "sts", "grant_type": "token_exchange"})
	e.ok(logical.UpdateOperation, "roles/fixed", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base"})
	do := func(path string, data map[string]any, want string) {
		t.Helper()
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
			Path: path, Data: data, Storage: e.storage, MountPoint: "sts-mount/"})
		if err != nil || resp == nil || !resp.IsError() || !strings.Contains(respErr(resp), want) {
			t.Fatalf("%s: err=%v resp=%v, want an error containing %q", path, err, respErr(resp), want)
		}
	}
	do("exchange/caller", map[string]any{}, "subject_token: required")
	do("exchange/fixed", map[string]any{"subject_token": "t"}, "read sts-mount/creds/fixed")
	do("exchange/base", map[string]any{"subject_token": "t"}, "sts-mount/exchange/ is for token_exchange roles")
	// creds of a caller-subject role says where to go, with the mount.
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
		Path: "creds/caller", Storage: e.storage, MountPoint: "sts-mount/"})
	if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), "vault write sts-mount/exchange/caller subject_token=") {
		t.Fatalf("creds/caller: err=%v resp=%v", err, respErr(resp))
	}
	if len(e.sts.Requests()) != 0 {
		t.Fatalf("%d requests to the IdP for refused calls", len(e.sts.Requests()))
	}
	// A performance standby forwards the exchange to the active node.
	e.sys.ReplicationStateVal = consts.ReplicationPerformanceStandby
	_, err = e.do(logical.UpdateOperation, "exchange/caller", map[string]any{"subject_token": "t"})
	if err != logical.ErrReadOnly {
		t.Fatalf("standby: err=%v, want ErrReadOnly", err)
	}
}

// creds/<role>/drop of a role whose callers bring the subject token forgets
// its cached exchanges (for when the IdP revoked one behind Vault's back),
// and a role deleted and written again under the same name starts afresh.
func TestExchangeDropAndRoleDelete(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(s string) bool { return s == "alice-token-123" },
		TokenTTL: 10 * time.Minute})
	role := map[string]any{"config": "sts", "grant_type": "token_exchange"}
	e.ok(logical.UpdateOperation, "roles/orders", role)
	exchange := func() string {
		t.Helper()
		return e.ok(logical.UpdateOperation, "exchange/orders", map[string]any{"subject_token": "alice-token-123"}).Data["access_token"].(string)
	}
	first := exchange()
	if exchange() != first || len(e.sts.Requests()) != 1 {
		t.Fatalf("%d exchanges, want the cached one", len(e.sts.Requests()))
	}
	drop := e.ok(logical.UpdateOperation, "creds/orders/drop", nil)
	if drop.Data["dropped"] != true {
		t.Errorf("drop answered dropped=%v, want true (an exchange was cached)", drop.Data["dropped"])
	}
	second := exchange()
	if second == first || len(e.sts.Requests()) != 2 {
		t.Fatalf("after drop: %d exchanges and the same token %v, want a new exchange", len(e.sts.Requests()), second == first)
	}
	e.ok(logical.DeleteOperation, "roles/orders", nil)
	e.ok(logical.UpdateOperation, "roles/orders", role)
	if third := exchange(); third == second || len(e.sts.Requests()) != 3 {
		t.Fatalf("role deleted and written again: %d exchanges, want a new exchange", len(e.sts.Requests()))
	}
}
