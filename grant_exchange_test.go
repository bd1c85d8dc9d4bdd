package idptokens

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// exchangeEnv: a source IdP issuing subject (and actor) tokens through role
// "base" (and "actor"), and a token exchange endpoint that accepts them,
// configured as config "sts".
type exchangeEnv struct {
	*testEnv
	src *fakeidp.Server
	sts *fakeidp.TokenExchange
}

func newExchangeEnv(t *testing.T, opts fakeidp.TokenExchangeOptions) *exchangeEnv {
	t.Helper()
	e := newTestEnv(t)
	src, url := startIdP(t, fakeidp.Options{ClientID: "src", ClientSecret: "src-secret", Scopes: []string{"base", "actor"}})
	e.ok(logical.UpdateOperation, "config/src", map[string]any{"token_url": url, "client_id": "src", "client_secret": "src-secret"})
	e.ok(logical.UpdateOperation, "roles/base", map[string]any{"config": "src", "scopes": "base"})
	e.ok(logical.UpdateOperation, "roles/actor", map[string]any{"config": "src", "scopes": "actor"})
	opts.ClientID, opts.ClientSecret = "sts-client", "sts-secret"
	if opts.ValidSubject == nil {
		opts.ValidSubject = src.Valid
	}
	opts.ValidActor = src.Valid
	sts := fakeidp.NewTokenExchange(opts)
	srv := httptest.NewServer(sts)
	t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "config/sts", map[string]any{"token_url": srv.URL + "/token", "client_id": "sts-client", "client_secret": "sts-secret"})
	return &exchangeEnv{testEnv: e, src: src, sts: sts}
}

// subject_role: creds/<role> exchanges the other role's current token, is
// cached and leased like any role, and sends every audience and resource.
func TestTokenExchangeSubjectRole(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{Audience: []string{"orders", "billing"},
		Resource: []string{"https://orders.example/"}, RequestedTokenType: fakeidp.AccessTokenType, TokenTTL: 20 * time.Minute})
	e.ok(logical.UpdateOperation, "roles/down", map[string]any{"config": "sts", "grant_type": "token_exchange",
		"subject_role": "base", "audience": "orders,billing", "resource": "https://orders.example/",
		"requested_token_type": fakeidp.AccessTokenType})
	resp := e.creds("down")
	base := e.creds("base").Data["access_token"].(string)
	subject, actor := e.sts.SubjectOf(resp.Data["access_token"].(string))
	if subject != base || actor != "" {
		t.Fatalf("exchanged token is for subject %q actor %q, want base's current token and no actor; refusals %v", subject, actor, e.sts.Refusals())
	}
	if resp.Data["issued_token_type"] != fakeidp.AccessTokenType {
		t.Errorf("issued_token_type = %v", resp.Data["issued_token_type"])
	}
	if ttl := leaseTTL(resp); ttl > 20*time.Minute || ttl < 20*time.Minute-3*time.Second {
		t.Errorf("lease %v, want the exchanged token's 20m", ttl)
	}
	if again := e.creds("down"); again.Data["access_token"] != resp.Data["access_token"] || len(e.sts.Requests()) != 1 || e.src.TokenRequests() != 1 {
		t.Errorf("second read: %d exchanges, %d source requests; want the cached token", len(e.sts.Requests()), e.src.TokenRequests())
	}
	form := e.sts.Requests()[0].Form
	if !slices.Equal(form["audience"], []string{"orders", "billing"}) || form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
		t.Errorf("exchange form %v", form)
	}
	// Expired: exchanged again (there is no refresh of an exchange).
	e.b.now = func() time.Time { return time.Now().Add(21 * time.Minute) }
	_ = e.creds("down")
	if len(e.sts.Requests()) != 2 {
		t.Errorf("%d exchanges after expiry, want 2", len(e.sts.Requests()))
	}
}

// actor_role's current token goes as actor_token.
func TestTokenExchangeActorRole(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{})
	e.ok(logical.UpdateOperation, "roles/delegated", map[string]any{"config": "sts", "grant_type": "token_exchange",
		"subject_role": "base", "actor_role": "actor"})
	tok := e.creds("delegated").Data["access_token"].(string)
	subject, actor := e.sts.SubjectOf(tok)
	if subject != e.creds("base").Data["access_token"] || actor != e.creds("actor").Data["access_token"] || subject == actor {
		t.Fatalf("subject %q actor %q; refusals %v", subject, actor, e.sts.Refusals())
	}
}

// Deleting a role another role exchanges from is allowed, and its answer
// names the roles whose next exchange then fails.
func TestDeletingASubjectRoleWarns(t *testing.T) {
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{})
	e.ok(logical.UpdateOperation, "roles/delegated", map[string]any{"config": "sts", "grant_type": "token_exchange",
		"subject_role": "base", "actor_role": "actor"})
	e.ok(logical.UpdateOperation, "roles/on-behalf", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base"})
	resp := e.ok(logical.DeleteOperation, "roles/base", nil)
	if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "roles delegated, on-behalf name role \"base\"") {
		t.Fatalf("delete of a subject role answered %v, want a warning naming delegated and on-behalf", resp)
	}
	if quiet := e.ok(logical.DeleteOperation, "roles/on-behalf", nil); quiet != nil && len(quiet.Warnings) > 0 {
		t.Errorf("a role nothing names warned on delete: %v", quiet.Warnings)
	}
}

// An exchange of a subject role's token answers that role's client: when
// the subject role's config moves to another client, the next read
// exchanges the new client's token instead of serving the old exchange.
func TestExchangeFollowsItsSubjectRolesClient(t *testing.T) {
	src2, url2 := startIdP(t, fakeidp.Options{ClientID: "src2", ClientSecret: "src2-secret", Scopes: []string{"base"}})
	var src *fakeidp.Server
	e := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(s string) bool { return src.Valid(s) || src2.Valid(s) }})
	src = e.src
	e.ok(logical.UpdateOperation, "roles/down", map[string]any{"config": "sts", "grant_type": "token_exchange", "subject_role": "base"})
	first := e.creds("down").Data["access_token"].(string)
	if subject, _ := e.sts.SubjectOf(first); !src.Valid(subject) {
		t.Fatal("the first exchange is not of the first client's token")
	}
	e.ok(logical.UpdateOperation, "config/src", map[string]any{"token_url": url2, "client_id": "src2", "client_secret": "src2-secret"})
	again := e.creds("down").Data["access_token"].(string)
	subject, _ := e.sts.SubjectOf(again)
	if again == first || !src2.Valid(subject) {
		t.Fatalf("after the subject role's client changed: same exchange %v, subject of client src2 %v", again == first, src2.Valid(subject))
	}
}
