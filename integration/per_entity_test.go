//go:build integration

package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// people: userpass users of one policy, each logged in to Vault (so each
// request carries their identity entity).
type people struct {
	accessor string            // the userpass mount's accessor, for templates
	tokens   map[string]string // user name -> Vault token
	entities map[string]string // user name -> entity ID
}

const peoplePolicy = `
path "idp/creds/*"       { capabilities = ["read", "update"] }
path "idp/token/*"       { capabilities = ["read"] }
path "idp/auth-url/*"    { capabilities = ["update"] }
path "idp/device-code/*" { capabilities = ["update"] }
`

func startPeople(t *testing.T, v *Vault, names ...string) *people {
	t.Helper()
	v.Run("auth", "enable", "userpass")
	var mounts map[string]struct {
		Accessor string `json:"accessor"`
	}
	v.JSON(&mounts, "auth", "list")
	policy := filepath.Join(t.TempDir(), "people.hcl")
	writeFile(t, policy, peoplePolicy)
	v.Run("policy", "write", "people", policy)
	p := &people{accessor: mounts["userpass/"].Accessor, tokens: map[string]string{}, entities: map[string]string{}}
	for _, n := range names {
		v.Write("auth/userpass/users/"+n, "password="+n+"-pw", "token_policies=people")
		var login struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				EntityID    string `json:"entity_id"`
			} `json:"auth"`
		}
		v.JSONAs("", &login, "write", "auth/userpass/login/"+n, "password="+n+"-pw")
		if login.Auth.ClientToken == "" || login.Auth.EntityID == "" {
			t.Fatalf("userpass login of %s gave no token or entity", n)
		}
		p.tokens[n], p.entities[n] = login.Auth.ClientToken, login.Auth.EntityID
	}
	return p
}

// read is a CLI read of path as user; ok false with the error text.
func (p *people) read(t *testing.T, v *Vault, user, path string) (Secret, string, bool) {
	t.Helper()
	r := v.CLIAs(p.tokens[user], "", "read", "-format=json", path)
	if r.Err != nil {
		return Secret{}, r.Stderr, false
	}
	return decodeSecret(t, r.Stdout), "", true
}

// browserLoginAs opens a login URL and logs in at oidc-provider's form as
// who; it returns the page the browser ends on (Vault's callback).
func browserLoginAs(t *testing.T, loginURL, who string) page {
	t.Helper()
	br := newBrowser(t)
	p := br.get(loginURL)
	for step := 0; step < 4 && p.URL.Path != "/v1/idp/callback"; step++ {
		p = br.submitForm(p, map[string]string{"login": who, "password": "any"})
	}
	return p
}

// TestPerEntityTokensThroughVault: three people of one policy and a role
// that gives each entity its own token, through a real Vault, against
// oidc-provider's own login form. Alice and Bob log in and each reads a
// token whose introspected sub is themselves; Carol is told to log in;
// root is refused for having no entity; a login of Carol's URL completed as
// Alice stores nothing (bound_subject); the operator lists the logins and
// forgets Bob's, whose token is then inactive at the IdP; after expiry
// Alice's refresh is hers; and the device flow gives Alice her own token.
func TestPerEntityTokensThroughVault(t *testing.T) {
	t.Parallel()
	const ttl = 15 * time.Second
	v := StartDevVault(t)
	op := StartOIDCProvider(t, ttl, "OIDC_REDIRECT_URI="+v.callbackURL())
	ppl := startPeople(t, v, "alice", "bob", "carol")
	v.Write("idp/config/op", "issuer="+op.Issuer, "client_id=code-client", "client_secret="+oidcClientSecret, "redirect_uris="+v.callbackURL())
	v.Write("idp/roles/people", "config=op", "grant_type=authorization_code", "scopes=openid,offline_access,api:read", "per_entity=true",
		"bound_subject={{identity.entity.aliases."+ppl.accessor+".name}}")

	loginOf := func(user, who string) page {
		t.Helper()
		var s Secret
		v.JSONAs(ppl.tokens[user], &s, "write", "-f", "idp/auth-url/people")
		return browserLoginAs(t, s.String("url"), who)
	}
	for _, user := range []string{"alice", "bob"} {
		if p := loginOf(user, user); p.Status != http.StatusOK || !strings.Contains(p.Body, "Login complete") {
			t.Fatalf("%s's login: HTTP %d\n%s", user, p.Status, p.Body)
		}
	}
	toks := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		s, msg, ok := ppl.read(t, v, user, "idp/creds/people")
		if !ok {
			t.Fatalf("%s's read: %s", user, msg)
		}
		toks[user] = s.String("access_token")
		if in := op.Introspect(t, "code-client", toks[user]); in["active"] != true || in["sub"] != user {
			t.Fatalf("%s's token introspects as %v", user, in)
		}
	}
	if _, msg, ok := ppl.read(t, v, "carol", "idp/creds/people"); ok || !strings.Contains(msg, "needs a login") || !strings.Contains(msg, "auth-url/people") {
		t.Fatalf("carol, who never logged in: %s", msg)
	}
	if r := v.CLI("read", "idp/creds/people"); r.Err == nil || !strings.Contains(r.Stderr, "no entity") {
		t.Fatalf("root's read: err=%v %s, want a 400 naming the missing entity", r.Err, r.Stderr)
	}

	// Carol's login URL, completed at the IdP by Alice: refused, nothing stored.
	if p := loginOf("carol", "alice"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "someone else") {
		t.Fatalf("carol's login completed as alice: HTTP %d\n%s", p.Status, p.Body)
	}
	if _, msg, ok := ppl.read(t, v, "carol", "idp/creds/people"); ok || !strings.Contains(msg, "needs a login") {
		t.Fatalf("after the refused login carol reads: %s", msg)
	}

	// The operator's view, and forgetting Bob.
	status, raw, _ := vaultHTTP(t, v, v.Token, "LIST", "idp/logins/people", nil)
	list := decodeSecret(t, string(raw))
	keys, _ := list.Data["keys"].([]any)
	if status != http.StatusOK {
		t.Fatalf("LIST idp/logins/people: %d %s", status, raw)
	}
	if len(keys) != 2 {
		t.Fatalf("logins of people: %v, want alice's and bob's entities", list.Data)
	}
	info, _ := list.Data["key_info"].(map[string]any)
	if a, _ := info[ppl.entities["alice"]].(map[string]any); a == nil || a["refresh_token"] != true {
		t.Fatalf("alice's key_info: %v", info)
	}
	v.Run("delete", "idp/logins/people/"+ppl.entities["bob"])
	if in := op.Introspect(t, "code-client", toks["bob"]); in["active"] != false {
		t.Fatalf("bob's forgotten token is still active at the IdP: %v", in)
	}
	if _, msg, ok := ppl.read(t, v, "bob", "idp/creds/people"); ok || !strings.Contains(msg, "needs a login") {
		t.Fatalf("bob after being forgotten: %s", msg)
	}

	// After expiry Alice's own refresh token makes her next token.
	time.Sleep(ttl + time.Second)
	s, msg, ok := ppl.read(t, v, "alice", "idp/creds/people")
	if !ok || s.String("access_token") == toks["alice"] {
		t.Fatalf("alice after expiry: %s (same token %v)", msg, ok && s.String("access_token") == toks["alice"])
	}
	if in := op.Introspect(t, "code-client", s.String("access_token")); in["active"] != true || in["sub"] != "alice" {
		t.Fatalf("alice's refreshed token introspects as %v", in)
	}

	// The device flow: Alice's login is Alice's.
	v.Write("idp/config/op-dev", "issuer="+op.Issuer, "client_id=device-client", "client_secret="+oidcClientSecret)
	v.Write("idp/roles/tv", "config=op-dev", "grant_type=device_code", "scopes=openid,offline_access,api:read", "per_entity=true")
	var dc Secret
	v.JSONAs(ppl.tokens["alice"], &dc, "write", "-f", "idp/device-code/tv")
	br := newBrowser(t)
	p := br.get(dc.String("verification_uri"))
	p = br.submitForm(p, map[string]string{"user_code": dc.String("user_code")})
	for step := 0; step < 6 && !strings.Contains(p.Body, "Sign-in Success"); step++ {
		p = br.submitForm(p, map[string]string{"login": "alice", "password": "any"})
	}
	var dev Secret
	if !eventually(60*time.Second, 250*time.Millisecond, func() bool {
		got, _, ok := ppl.read(t, v, "alice", "idp/creds/tv")
		dev = got
		return ok
	}) {
		t.Fatal("alice's device login gave her no token within 60 s")
	}
	if in := op.Introspect(t, "device-client", dev.String("access_token")); in["sub"] != "alice" {
		t.Fatalf("alice's device token introspects as %v", in)
	}
	if _, msg, ok := ppl.read(t, v, "bob", "idp/creds/tv"); ok || !strings.Contains(msg, "device login") {
		t.Fatalf("bob reads alice's device role: %s", msg)
	}
}

// TestJWTSubjectTemplatesThroughVault: a jwt_bearer role whose subject is
// a template of the caller's entity gives two people two tokens, each for
// its own subject, the second read of each from the cache.
func TestJWTSubjectTemplatesThroughVault(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "assertion-key.pem")
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	v := StartDevVault(t)
	ppl := startPeople(t, v, "alice", "bob")
	idp := fakeidp.NewJWTBearer(fakeidp.JWTBearerOptions{Key: &key.PublicKey, Issuer: "vault-svc", Subjects: []string{"alice", "bob"},
		Audience: "https://as.example/token"})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	v.Write("idp/config/dwd", "token_url="+srv.URL+"/token", "client_id=vault-svc", "client_auth=none", "private_key=@"+keyFile)
	v.Write("idp/roles/mail", "config=dwd", "grant_type=jwt_bearer", "jwt_audience=https://as.example/token",
		"jwt_subject={{identity.entity.aliases."+ppl.accessor+".name}}")
	first := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		s, msg, ok := ppl.read(t, v, user, "idp/creds/mail")
		if !ok {
			t.Fatalf("%s: %s (refusals %v)", user, msg, idp.Refusals())
		}
		first[user] = s.String("access_token")
		if got := idp.SubjectOf(first[user]); got != user {
			t.Fatalf("%s's token is for subject %q", user, got)
		}
	}
	for _, user := range []string{"alice", "bob"} {
		if s, _, _ := ppl.read(t, v, user, "idp/creds/mail"); s.String("access_token") != first[user] {
			t.Fatalf("%s's second read is not the cached token", user)
		}
	}
	if n := len(idp.Requests()); n != 2 {
		t.Fatalf("%d token requests for two people reading twice, want 2", n)
	}
	if r := v.CLI("read", "idp/creds/mail"); r.Err == nil || !strings.Contains(r.Stderr, "no entity") {
		t.Fatalf("root's read: err=%v %s", r.Err, r.Stderr)
	}
}
