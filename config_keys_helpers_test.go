package idptokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/storagecount"
)

// keysEnv is a backend on counted storage with a fake clock and its log
// captured, and an IdP that knows the client's keys only from the engine's
// JWKS (the client's jwks_uri), fetched at each token request.
type keysEnv struct {
	*testEnv
	tt      *testing.T
	counted *storagecount.Storage
	clock   *fakeclock.Clock
	log     *lockedBuffer
	idp     *jwksIdP
}

func newKeysEnv(t *testing.T) *keysEnv {
	t.Helper()
	counted := &storagecount.Storage{Storage: &logical.InmemStorage{}}
	k := &keysEnv{tt: t, counted: counted, clock: fakeclock.New(testT0)}
	k.testEnv = k.mount(counted)
	k.idp = startJWKSIdP(t, k)
	return k
}

// mount mounts another backend (a restart, another node) on storage, with
// the env's clock and a log of its own.
func (k *keysEnv) mount(storage logical.Storage) *testEnv {
	k.tt.Helper()
	k.log = &lockedBuffer{}
	return newTestEnv(k.tt, onStorage(storage), withClock(k.clock), withLogs(k.log))
}

// periodic runs the backend's periodic function once.
func (e *testEnv) periodic() {
	e.t.Helper()
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		e.t.Fatalf("periodic: %v", err)
	}
}

// jwks reads the public JWKS as the IdP does: status, Cache-Control and
// the kids served.
func (e *testEnv) jwks(name string) (int, string, []string) {
	e.t.Helper()
	resp, err := e.do(logical.ReadOperation, "jwks/"+name, nil)
	if err != nil {
		e.t.Fatalf("jwks/%s: %v", name, err)
	}
	status := resp.Data[logical.HTTPStatusCode].(int)
	if ct := resp.Data[logical.HTTPContentType]; ct != "application/json" {
		e.t.Fatalf("jwks/%s: Content-Type %v", name, ct)
	}
	cc, _ := resp.Data[logical.HTTPCacheControlHeader].(string)
	if status != http.StatusOK {
		return status, cc, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &set); err != nil {
		e.t.Fatalf("jwks/%s: %v", name, err)
	}
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			e.t.Fatalf("jwks/%s serves a private key", name)
		}
		kids = append(kids, k.KeyID)
	}
	return status, cc, kids
}

// keyStates is config/<name>'s keys: kid -> state.
func (e *testEnv) keyStates(name string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, k := range e.ok(logical.ReadOperation, "config/"+name, nil).Data["keys"].([]map[string]any) {
		out[k["kid"].(string)] = k["state"].(string)
	}
	return out
}

// seenRequest is one token request the IdP took: how the client
// authenticated, and the kid of each assertion.
type seenRequest struct {
	Grant, Auth, ClientKid, GrantKid string
}

// jwksIdP is a token endpoint for client "c" that verifies private_key_jwt
// client assertions and jwt_bearer grant assertions against the engine's
// JWKS of config "k" at the env's clock, and, while acceptSecret, HTTP Basic
// with secret "s3cret".
type jwksIdP struct {
	env          *keysEnv
	srv          *httptest.Server
	mu           sync.Mutex
	seen         []seenRequest
	acceptSecret bool
	acceptJWKS   bool
	static       *jose.JSONWebKey // a key registered by upload
	config       string
}

func startJWKSIdP(t *testing.T, env *keysEnv) *jwksIdP {
	i := &jwksIdP{env: env, acceptJWKS: true, config: "k"}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	t.Cleanup(i.srv.Close)
	return i
}

func (i *jwksIdP) tokenURL() string { return i.srv.URL + "/token" }

func (i *jwksIdP) set(acceptSecret, acceptJWKS bool, static *jose.JSONWebKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.acceptSecret, i.acceptJWKS, i.static = acceptSecret, acceptJWKS, static
}

func (i *jwksIdP) requests() []seenRequest {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]seenRequest(nil), i.seen...)
}

// verify checks a JWT against the keys the IdP knows and answers its kid.
func (i *jwksIdP) verify(token string) (string, bool) {
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	if err != nil {
		return "", false
	}
	kid := parsed.Headers[0].KeyID
	i.mu.Lock()
	acceptJWKS, static := i.acceptJWKS, i.static
	i.mu.Unlock()
	var keys []jose.JSONWebKey
	if static != nil {
		keys = append(keys, *static)
	}
	if acceptJWKS {
		resp, err := i.env.do(logical.ReadOperation, "jwks/"+i.config, nil)
		if err != nil || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
			return kid, false
		}
		var set jose.JSONWebKeySet
		if json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &set) != nil {
			return kid, false
		}
		keys = append(keys, set.Keys...)
	}
	for _, k := range keys {
		if k.KeyID != kid {
			continue
		}
		var claims jwt.Claims
		if parsed.Claims(k.Key, &claims) == nil && claims.ValidateWithLeeway(jwt.Expected{Time: i.env.clock.Now()}, 0) == nil {
			return kid, true
		}
	}
	return kid, false
}

func (i *jwksIdP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/openid-configuration" { // for issuer configs
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.srv.URL, "token_endpoint": i.tokenURL(),
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "private_key_jwt"}})
		return
	}
	_ = r.ParseForm()
	seen := seenRequest{Grant: r.PostForm.Get("grant_type")}
	refuse := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	i.mu.Lock()
	acceptSecret := i.acceptSecret
	i.mu.Unlock()
	switch user, pass, basic := r.BasicAuth(); {
	case r.PostForm.Get("client_assertion") != "":
		seen.Auth = "private_key_jwt"
		kid, ok := i.verify(r.PostForm.Get("client_assertion"))
		seen.ClientKid = kid
		if !ok {
			i.record(seen)
			refuse("invalid_client")
			return
		}
	case basic:
		seen.Auth = "basic"
		if !acceptSecret || user != "c" || pass != "s3cret" {
			i.record(seen)
			refuse("invalid_client")
			return
		}
	default:
		seen.Auth = "none"
	}
	if seen.Grant == backend.JWTBearerGrantURN {
		kid, ok := i.verify(r.PostForm.Get("assertion"))
		seen.GrantKid = kid
		if !ok {
			i.record(seen)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
	}
	i.record(seen)
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + hex.EncodeToString(buf), "token_type": "Bearer", "expires_in": 60})
}

func (i *jwksIdP) record(s seenRequest) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.seen = append(i.seen, s)
}

// lastRequest is the IdP's latest token request.
func (i *jwksIdP) lastRequest(t *testing.T) seenRequest {
	t.Helper()
	r := i.requests()
	if len(r) == 0 {
		t.Fatal("the IdP saw no token request")
	}
	return r[len(r)-1]
}

// freshCreds advances the clock past the cached token's life and reads
// creds/<role>, which then asks the IdP.
func (k *keysEnv) freshCreds(role string) *logical.Response {
	k.testEnv.t.Helper()
	k.clock.Advance(61 * time.Second)
	return k.creds(role)
}
