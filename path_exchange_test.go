package idptokens

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
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
	for _, f := range []string{"ttl", "rotation_period", "last_vault_rotation"} {
		if _, has := alice.Data[f]; has {
			t.Fatalf("the leased exchange answers %s, a field of the unleased read only", f)
		}
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

// testJWT is an unsigned-looking JWT whose only claim that matters is exp.
func testJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, exp.Unix()))) + ".c2ln"
}

// A cached exchange is never handed out past its subject token's life: a
// JWT's exp, else the role's exchange_cache_ttl (default 60 s) from the
// exchange, each less the one second by which Vault nodes' clocks may
// disagree. Past it the IdP is asked again, and refuses the dead subject.
func TestCachedExchangeEndsWithItsSubject(t *testing.T) {
	clock := fakeclock.New(time.Now())
	expires := map[string]time.Time{}
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{TokenTTL: time.Hour,
		ValidSubject: func(s string) bool { exp, ok := expires[s]; return ok && clock.Now().Before(exp) }})
	e.b.now = clock.Now
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"config": "sts", "grant_type": "token_exchange"})
	exchange := func(subject string) (*logical.Response, error) {
		return e.do(logical.UpdateOperation, "exchange/orders", map[string]any{"subject_token": subject})
	}
	jwt := testJWT("alice", clock.Now().Add(2*time.Minute))
	expires[jwt] = clock.Now().Add(2 * time.Minute)
	if resp, err := exchange(jwt); err != nil || resp.IsError() {
		t.Fatalf("exchange: %v %v", err, respErr(resp))
	}
	clock.Advance(time.Minute)
	if resp, err := exchange(jwt); err != nil || resp.IsError() || len(e.sts.Requests()) != 1 {
		t.Fatalf("within the subject's life: %v %v, %d exchanges, want the cached one", err, respErr(resp), len(e.sts.Requests()))
	}
	clock.Advance(time.Minute + time.Second) // the subject expired
	if resp, err := exchange(jwt); err != nil || !resp.IsError() || len(e.sts.Requests()) != 2 {
		t.Fatalf("past the subject's exp: %v %v after %d exchanges, want the IdP asked again and refusing", err, respErr(resp), len(e.sts.Requests()))
	}

	opaque := "opaque-subject-token-1"
	expires[opaque] = clock.Now().Add(time.Hour)
	if resp, err := exchange(opaque); err != nil || resp.IsError() {
		t.Fatalf("exchange: %v %v", err, respErr(resp))
	}
	delete(expires, opaque) // revoked at the IdP
	clock.Advance(58 * time.Second)
	if resp, _ := exchange(opaque); resp.IsError() || len(e.sts.Requests()) != 3 {
		t.Fatalf("58 s after the exchange: %v, %d exchanges, want the cached one (what docs/idps.md says remains)", respErr(resp), len(e.sts.Requests()))
	}
	clock.Advance(time.Second)
	if resp, _ := exchange(opaque); !resp.IsError() || len(e.sts.Requests()) != 4 {
		t.Fatalf("59 s after the exchange: %v, %d exchanges, want the IdP asked again and refusing", respErr(resp), len(e.sts.Requests()))
	}
	// exchange_cache_ttl sets that bound.
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"exchange_cache_ttl": "10s"})
	expires[opaque] = clock.Now().Add(time.Hour)
	exchange(opaque)
	clock.Advance(9 * time.Second)
	if exchange(opaque); len(e.sts.Requests()) != 6 {
		t.Fatalf("%d exchanges: exchange_cache_ttl=10s did not bound the reuse", len(e.sts.Requests()))
	}
	e.fails(logical.UpdateOperation, "roles/orders", map[string]any{"exchange_cache_ttl": "2h"}, "exchange_cache_ttl")
	e.fails(logical.UpdateOperation, "roles/fixed", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base",
		"exchange_cache_ttl": "10s"}, "exchange_cache_ttl")
}

// A single-active config refuses a role that exchanges callers' subject
// tokens: each exchange would mint a token of the client that kills the one
// exchanged before it, under its lease. One stored before the refusal is
// refused at exchange/<role>, without asking the IdP.
func TestCallerExchangeRefusedOnSingleActiveConfig(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(string) bool { return true }})
	e.ok(logical.UpdateOperation, "config/sts", map[string]any{"single_active_token": true})
	e.fails(logical.UpdateOperation, "roles/orders", map[string]any{"config": "sts", "grant_type": "token_exchange"}, "single_active_token")
	if raw := e.stored(rolePrefix + "orders"); raw != nil {
		t.Fatal("the refused role was stored")
	}
	// subject_role: one shared token, through the holds like any role.
	e.ok(logical.UpdateOperation, "roles/down", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base"})
	e.creds("down")

	entry, err := logical.StorageEntryJSON(rolePrefix+"legacy", &roleEntry{Config: "sts", GrantType: "token_exchange"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Put(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	before := len(e.sts.Requests())
	e.fails(logical.UpdateOperation, "exchange/legacy", map[string]any{"subject_token": "user-token"}, "single_active_token")
	if len(e.sts.Requests()) != before {
		t.Fatal("the refused exchange reached the IdP")
	}
}

// A config holding a role that exchanges callers' subject tokens cannot be
// made single-active: the role would then break leases.
func TestSingleActiveRefusedUnderCallerExchangeRoles(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(string) bool { return true }})
	e.ok(logical.UpdateOperation, "roles/orders", map[string]any{"config": "sts", "grant_type": "token_exchange"})
	msg := e.fails(logical.UpdateOperation, "config/sts", map[string]any{"single_active_token": true}, "single_active_token")
	if !strings.Contains(msg, "orders") {
		t.Fatalf("refusal %q does not name the role", msg)
	}
}
