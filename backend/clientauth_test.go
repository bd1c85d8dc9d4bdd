package backend

import (
	"context"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

// Rotation: the current secret refused with invalid_client, the previous
// one is tried once and succeeds; both refused gives one error; other
// refusals do not fall back.
func TestPreviousSecretFallback(t *testing.T) {
	const prev = "previous-secret-77"
	accept := func(secret string) func(http.ResponseWriter, *http.Request, int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			r.ParseForm()
			if r.Form.Get("client_secret") == secret {
				answerOK(w, r, n)
				return
			}
			writeJSONBody(w, 401, `{"error":"invalid_client","error_description":"bad secret `+r.Form.Get("client_secret")+`"}`)
		}
	}
	var events []FallbackEvent
	setup := func(h func(http.ResponseWriter, *http.Request, int)) (*Endpoint, *recordingIdP) {
		idp := newRecordingIdP(t, h)
		e := newTestEndpoint(t, "oauth2", idp.tokenURL())
		e.ClientAuth, e.PreviousClientSecret = ClientAuthPost, prev
		events = nil
		e.OnFallback = func(ev FallbackEvent) { events = append(events, ev) }
		return e, idp
	}

	e, idp := setup(accept(prev))
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	reqs := idp.requests()
	if len(reqs) != 2 || reqs[0].Form.Get("client_secret") != testClientSecret || reqs[1].Form.Get("client_secret") != prev {
		t.Fatalf("want current then previous, got %d requests", len(reqs))
	}
	if len(events) != 1 || !events[0].Succeeded || events[0].Operation != "token" {
		t.Fatalf("events = %+v", events)
	}

	e, idp = setup(accept("neither"))
	_, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if !IsInvalidClient(err) || !strings.Contains(err.Error(), "previous credential was refused too") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), prev) || strings.Contains(err.Error(), testClientSecret) {
		t.Fatalf("error quotes a secret: %v", err)
	}
	if len(idp.requests()) != 2 || len(events) != 1 || events[0].Succeeded {
		t.Fatalf("%d requests, events %+v", len(idp.requests()), events)
	}

	e, idp = setup(answerStatus(400, `{"error":"invalid_scope"}`))
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err == nil {
		t.Fatal("want invalid_scope")
	}
	if len(idp.requests()) != 1 || len(events) != 0 {
		t.Fatalf("invalid_scope fell back: %d requests", len(idp.requests()))
	}

	// No previous secret: one request.
	e, idp = setup(accept(prev))
	e.PreviousClientSecret = ""
	e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	if len(idp.requests()) != 1 {
		t.Fatalf("%d requests without a previous secret", len(idp.requests()))
	}
}

// private_key_jwt rotation: the previous key signs the second try.
func TestPreviousKeyFallback(t *testing.T) {
	curPEM, _ := testkeys.RSA(t, 2048)
	prevPEM, prevKey := testkeys.RSA(t, 2048)
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		r.ParseForm()
		tok, _ := jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256})
		var c jwt.Claims
		if tok != nil && tok.Claims(&prevKey.PublicKey, &c) == nil {
			answerOK(w, r, n)
			return
		}
		writeJSONBody(w, 400, `{"error":"invalid_client"}`)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	e.ClientAuth = ClientAuthPrivateKeyJWT
	e.Signer, _ = NewAssertionSigner(curPEM, "new", "")
	e.PreviousSigner, _ = NewAssertionSigner(prevPEM, "old", "")
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if n := len(idp.requests()); n != 2 {
		t.Fatalf("%d requests", n)
	}
}

func TestChooseClientAuth(t *testing.T) {
	all := HeldCredentials{Secret: true, Key: true, TLSCert: true}
	for _, c := range []struct {
		adv  []string
		held HeldCredentials
		want ClientAuth
	}{
		{[]string{"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"}, all, ClientAuthPrivateKeyJWT},
		{[]string{"client_secret_post", "tls_client_auth"}, all, ClientAuthTLS},
		{[]string{"client_secret_post", "client_secret_basic"}, all, ClientAuthBasic},
		{[]string{"client_secret_post", "private_key_jwt"}, HeldCredentials{Secret: true}, ClientAuthPost},
		{nil, HeldCredentials{Secret: true}, ClientAuthBasic},
		{[]string{"private_key_jwt"}, HeldCredentials{Key: true}, ClientAuthPrivateKeyJWT},
	} {
		got, err := ChooseClientAuth(c.adv, c.held)
		if err != nil || got != c.want {
			t.Errorf("ChooseClientAuth(%v, %+v) = %s, %v; want %s", c.adv, c.held, got, err, c.want)
		}
	}
	if _, err := ChooseClientAuth([]string{"private_key_jwt"}, HeldCredentials{Secret: true}); err == nil || !strings.Contains(err.Error(), "private_key_jwt") {
		t.Errorf("no match: %v", err)
	}
	if _, err := ChooseClientAuth(nil, HeldCredentials{Key: true}); err == nil {
		t.Error("no advertised list means client_secret_basic only")
	}
}
