package idptokens

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"pgregory.net/rapid"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// A person's token is theirs, as a property: across random sequences of
// logins (each person's own, and logins one begins that another completes),
// reads, drops, forgets by the operator, role rewrites, deletes and
// restarts, with tokens expiring and refreshing, no read ever hands a
// person a token that acts as anyone else, and a token dropped or
// forgotten is never handed out again.
func TestPerEntityInvariants(t *testing.T) {
	t.Parallel() // the models share nothing: one a core
	rapid.Check(t, func(rt *rapid.T) {
		m := newEntityModel(rt)
		defer m.srv.Close()
		rt.Repeat(map[string]func(*rapid.T){
			"":        m.check,
			"read":    m.read,
			"login":   m.login,
			"drop":    m.drop,
			"forget":  m.forget,
			"rewrite": m.rewrite,
			"delete":  m.deleteRole,
			"restart": m.restart,
			"advance": m.advance,
		})
	})
}

var modelPeople = []*logical.Entity{alice, bob, carol}

type entityModel struct {
	rt      *rapid.T
	clock   *fakeclock.Clock
	idp     *fakeidp.Server
	srv     *httptest.Server
	storage logical.Storage
	b       *idpBackend
	bound   bool            // the role binds logins to their subject
	dead    map[string]bool // tokens dropped or forgotten: never to be served again
	// mayHold is, per person, whose tokens their key may hold: their own,
	// and without bound_subject those of whoever completed a login they
	// began (the threat bound_subject closes).
	mayHold map[string]map[string]bool
	// servedTo is, per token, who was handed it.
	servedTo map[string]string
}

func newEntityModel(rt *rapid.T) *entityModel {
	m := &entityModel{rt: rt, clock: fakeclock.New(testT0), storage: &logical.InmemStorage{}, dead: map[string]bool{}, mayHold: map[string]map[string]bool{}, servedTo: map[string]string{}}
	for _, p := range modelPeople {
		m.mayHold[p.Name] = map[string]bool{p.Name: true}
	}
	m.idp = fakeidp.New(fakeidp.Options{Style: fakeidp.StyleOAuth2, ClientID: "people-app", ClientSecret: "people-secret", Scopes: []string{"openid", "read", "write"},
		RefreshTokens: true, OIDC: true, RedirectURIs: []string{vaultCallback}, TokenTTL: time.Duration(rapid.IntRange(1, 10).Draw(rt, "ttl_minutes")) * time.Minute})
	m.idp.SetClock(m.clock.Now)
	m.srv = httptest.NewServer(m.idp)
	m.idp.SetIssuer(m.srv.URL)
	m.bound = rapid.Bool().Draw(rt, "bound_subject")
	m.mount()
	m.must(logical.UpdateOperation, "config/oidc", map[string]any{"issuer": m.srv.URL, "client_id": "people-app", "client_secret": "people-secret",
		"redirect_uris": vaultCallback})
	m.writeRole("openid,read")
	return m
}

func (m *entityModel) mount() {
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.NewNullLogger()
	conf.StorageView = m.storage
	conf.System = entitySystemView{StaticSystemView: &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour},
		entities: map[string]*logical.Entity{alice.ID: alice, bob.ID: bob, carol.ID: carol}}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		m.rt.Fatal(err)
	}
	m.b = b.(*idpBackend)
	m.b.now, m.b.sleep = m.clock.Now, m.clock.Sleep
}

func (m *entityModel) do(entity string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return m.b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: m.storage, EntityID: entity, MountPoint: "idp/"})
}

func (m *entityModel) must(op logical.Operation, path string, data map[string]any) *logical.Response {
	resp, err := m.do("", op, path, data)
	if err != nil || resp.IsError() {
		m.rt.Fatalf("%s %s: %v %v", op, path, err, respErr(resp))
	}
	return resp
}

func (m *entityModel) writeRole(scopes string) {
	data := map[string]any{"config": "oidc", "grant_type": "authorization_code", "scopes": scopes, "per_entity": true}
	if m.bound {
		data["bound_subject"] = "{{identity.entity.aliases." + userpassAccessor + ".name}}"
	}
	m.must(logical.UpdateOperation, "roles/people", data)
}

func (m *entityModel) who(rt *rapid.T, label string) *logical.Entity {
	return rapid.SampledFrom(modelPeople).Draw(rt, label)
}

// read: whatever a person is handed acts as themselves and is not dead.
func (m *entityModel) read(rt *rapid.T) {
	p := m.who(rt, "reader")
	path := rapid.SampledFrom([]string{"creds/people", "token/people"}).Draw(rt, "path")
	resp, err := m.do(p.ID, logical.ReadOperation, path, nil)
	if err != nil {
		rt.Fatalf("%s read by %s: %v", path, p.Name, err)
	}
	if resp.IsError() {
		if !strings.Contains(respErr(resp), "needs a login") {
			rt.Fatalf("%s read by %s: %s", path, p.Name, respErr(resp))
		}
		return
	}
	tok := resp.Data["access_token"].(string)
	if owner := m.idp.OwnerOf(tok); !m.mayHold[p.Name][owner] {
		rt.Fatalf("%s was handed a token that acts as %q, of no login %s began", p.Name, owner, p.Name)
	}
	if m.dead[tok] {
		rt.Fatalf("%s was handed a token that was dropped or forgotten", p.Name)
	}
	m.servedTo[tok] = p.Name
}

// login: begun by one person, completed at the IdP by one (often the same).
func (m *entityModel) login(rt *rapid.T) {
	begins := m.who(rt, "begins")
	completes := begins
	if rapid.IntRange(0, 3).Draw(rt, "someone_else") == 0 {
		completes = m.who(rt, "completes")
	}
	resp, err := m.do(begins.ID, logical.UpdateOperation, "auth-url/people", nil)
	if err != nil || resp.IsError() {
		rt.Fatalf("auth-url for %s: %v %v", begins.Name, err, respErr(resp))
	}
	u, _ := url.Parse(resp.Data["url"].(string))
	q := u.Query()
	code := m.idp.IssueCodeFor(completes.Name, q.Get("nonce"), q.Get("redirect_uri"), q.Get("scope"), q.Get("code_challenge"))
	cb, err := m.do("", logical.UpdateOperation, "callback", map[string]any{"code": code, "state": q.Get("state")})
	if err != nil {
		rt.Fatal(err)
	}
	if m.bound && completes != begins && !cb.IsError() {
		rt.Fatalf("a login %s began and %s completed was stored under a bound_subject", begins.Name, completes.Name)
	}
	if !cb.IsError() {
		m.mayHold[begins.Name][completes.Name] = true
	}
}

func (m *entityModel) drop(rt *rapid.T) {
	p := m.who(rt, "dropper")
	m.killHeld(p)
	if resp, err := m.do(p.ID, logical.UpdateOperation, "creds/people/drop", nil); err != nil || resp.IsError() {
		rt.Fatalf("drop by %s: %v %v", p.Name, err, respErr(resp))
	}
}

func (m *entityModel) forget(rt *rapid.T) {
	p := m.who(rt, "forgotten")
	m.killHeld(p)
	m.must(logical.DeleteOperation, "logins/people/"+p.ID, nil)
}

// killHeld marks the tokens p's key holds, and every token p was handed,
// as never to be served again (p's drop or forget).
func (m *entityModel) killHeld(p *logical.Entity) {
	if raw, _ := m.storage.Get(context.Background(), "tokens/"+tokenKey{name: "people", family: familyEntity, member: p.ID}.String()); raw != nil {
		var st struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(raw.Value, &st) == nil {
			m.dead[st.AccessToken] = true
		}
	}
	for tok, who := range m.servedTo {
		if who == p.Name {
			m.dead[tok] = true
		}
	}
}

// killAll: every person's tokens are dropped (a role delete or rewrite).
func (m *entityModel) killAll() {
	for _, p := range modelPeople {
		m.killHeld(p)
	}
}

func (m *entityModel) rewrite(rt *rapid.T) {
	scopes := rapid.SampledFrom([]string{"openid,read", "openid,read,write"}).Draw(rt, "scopes")
	before := m.must(logical.ReadOperation, "roles/people", nil).Data["scopes"].([]string)
	if strings.Join(before, ",") != scopes {
		m.killAll()
	}
	m.writeRole(scopes)
}

func (m *entityModel) deleteRole(rt *rapid.T) {
	m.killAll()
	m.must(logical.DeleteOperation, "roles/people", nil)
	m.writeRole("openid,read")
}

func (m *entityModel) restart(rt *rapid.T) { m.mount() }

func (m *entityModel) advance(rt *rapid.T) {
	m.clock.Advance(time.Duration(rapid.IntRange(1, 12).Draw(rt, "minutes")) * time.Minute)
}

// check: memory holds what storage holds, for every person's key.
func (m *entityModel) check(rt *rapid.T) {
	for _, p := range modelPeople {
		key := tokenKey{name: "people", family: familyEntity, member: p.ID}.String()
		mem, ok := m.b.tokens.InMemory(key)
		if !ok {
			continue
		}
		raw, err := m.storage.Get(context.Background(), "tokens/"+key)
		if err != nil || raw == nil {
			rt.Fatalf("%s's token is in memory but not in storage", p.Name)
		}
		if owner := m.idp.OwnerOf(mem.AccessToken); !m.mayHold[p.Name][owner] {
			rt.Fatalf("%s's key holds a token that acts as %q, of no login %s began", p.Name, owner, p.Name)
		}
	}
}
