package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/storagecount"
)

// peopleStartupCalls counts, in-process, the storage calls the plugin makes
// when it starts on storage holding o.entities people's tokens of one
// per_entity role (what a Vault restart, a plugin reload or a failover
// does), and on the first reads of a person's token then.
func (e *env) peopleStartupCalls() error {
	const callback = "https://vault.example/v1/idp/callback"
	idp := fakeidp.New(fakeidp.Options{ClientID: peopleClient, ClientSecret: secret, Scopes: []string{"read"}, RedirectURIs: []string{callback}})
	ts := httptest.NewServer(idp)
	defer ts.Close()
	mem := &logical.InmemStorage{}

	b, err := mountInProcess(mem)
	if err != nil {
		return err
	}
	do := func(b logical.Backend, s logical.Storage, entity string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: s, EntityID: entity})
		if err == nil && resp != nil && resp.IsError() {
			err = resp.Error()
		}
		return resp, err
	}
	if _, err := do(b, mem, "", logical.UpdateOperation, "config/"+peopleConfig, map[string]any{
		"token_url": ts.URL + idp.TokenPath(), "auth_url": ts.URL + "/connect/authorize",
		"client_id": peopleClient, "client_secret": secret, "redirect_uris": callback,
	}); err != nil {
		return err
	}
	if _, err := do(b, mem, "", logical.UpdateOperation, "roles/"+peopleRole, map[string]any{"config": peopleConfig, "grant_type": "authorization_code", "scopes": "read", "per_entity": true}); err != nil {
		return err
	}
	entity := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) } // the shape of a Vault entity ID
	n := e.o.entities
	for i := range n {
		resp, err := do(b, mem, entity(i), logical.UpdateOperation, "auth-url/"+peopleRole, nil)
		if err != nil {
			return err
		}
		u, err := url.Parse(resp.Data["url"].(string))
		if err != nil {
			return err
		}
		rec := httptest.NewRecorder()
		idp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u.String(), nil))
		loc, err := url.Parse(rec.Header().Get("Location"))
		if rec.Code != http.StatusFound || err != nil {
			return fmt.Errorf("authorize: HTTP %d, Location %q", rec.Code, rec.Header().Get("Location"))
		}
		if _, err := do(b, mem, "", logical.UpdateOperation, "callback", map[string]any{"code": loc.Query().Get("code"), "state": loc.Query().Get("state")}); err != nil {
			return err
		}
	}
	r := &e.rep.people
	counted := &storagecount.Storage{Storage: mem}
	t0 := time.Now()
	b2, err := mountInProcess(counted)
	if err != nil {
		return err
	}
	r.startTime = time.Since(t0)
	r.startCalls, r.startTotal = counted.String(), int(counted.Total())
	counted.Reset()
	before := idp.TokenRequests()
	if _, err := do(b2, counted, entity(n/2), logical.ReadOperation, "token/"+peopleRole, nil); err != nil {
		return err
	}
	r.firstReadCalls = counted.String()
	counted.Reset()
	if _, err := do(b2, counted, entity(n/2+1), logical.ReadOperation, "token/"+peopleRole, nil); err != nil {
		return err
	}
	r.otherReadCalls = counted.String()
	counted.Reset()
	if _, err := do(b2, counted, entity(n/2+1), logical.ReadOperation, "token/"+peopleRole, nil); err != nil {
		return err
	}
	r.againReadCalls = counted.String()
	r.startIdP = idp.TokenRequests() - before
	r.startEntries = n
	return nil
}
