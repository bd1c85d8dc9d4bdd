package backend

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Fuzz targets, seeded with the IdP documents' examples
// (/work/shared/seeds). Run one with
//
//	go test -run=^$ -fuzz=FuzzParseTokenResponse -fuzztime=20s ./backend/

func FuzzParseTokenResponse(f *testing.F) {
	seeds := []string{
		// MWI
		`{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9.TJVA95OrM7E2cBab30RMHrHDcEfxjoYZgeFONFh7HgQ","expires_in":3600,"token_type":"Bearer"}`,
		// MicroTek
		`{"access_token": "YOUR_TOKEN", "expires_in": 3600, "token_type": "Bearer"}`,
		// Screening Eagle
		`{"scope":"openid email profile inspect","token_type":"Bearer","access_token":"eyJ.eyJ.zsN","expires_in":604800,"id_token":"eyJ.eyJ.rQr","refresh_token":"eyJ.eyJ.IkZ"}`,
		`{"error":"Forbidden","errorDescription":"permission denied"}`,
		// MyID and others
		`{"access_token":"a","token_type":"bearer","expires_in":"3600","scope":["myid.rest.basic"]}`,
		`{"access_token":"a","expires_in":1e3}`,
		`{"access_token":"a","expires_in":"NaN"}`,
		`{"access_token":"a","expires_in":0.0000001}`,
		`{"access_token":"a","expires_in":-1}`,
		`{"access_token":"a","expires_in":31622401}`,
		`{"access_token":"a","token_type":"N_A"}`,
		`<html><body>login</body></html>`,
		`null`,
		// JWT access tokens without expires_in: the exp claim decides.
		`{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MTU4NjE2MDB9.c2ln"}`,
		`{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOiJzb29uIn0.c2ln"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), int64(0))
		f.Add([]byte(s), int64(time.Hour))
	}
	obtainedAt := time.Date(2024, 5, 16, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, ttl int64) {
		// default_token_ttl is a config value within (0, MaxExpiresIn].
		defaultTTL := time.Duration(ttl)
		if defaultTTL < 0 || defaultTTL > MaxExpiresIn {
			defaultTTL = 0
		}
		allowed := []string{"Bearer", "N_A"}
		tok, err := ParseTokenResponse(body, obtainedAt, defaultTTL, allowed)
		if err != nil {
			if tok != nil {
				t.Fatalf("token %+v beside error %v", tok, err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes: %q", len(err.Error()), err)
			}
			return
		}
		if tok.AccessToken == "" {
			t.Fatal("accepted an empty access_token")
		}
		if !tok.ObtainedAt.Equal(obtainedAt) {
			t.Fatalf("ObtainedAt = %v", tok.ObtainedAt)
		}
		if !tok.Expiry.After(obtainedAt) {
			t.Fatalf("Expiry %v is not after obtainedAt %v", tok.Expiry, obtainedAt)
		}
		if life := tok.Expiry.Sub(obtainedAt); life > MaxExpiresIn {
			t.Fatalf("lifetime %v beyond MaxExpiresIn", life)
		}
		if !slices.Contains(allowed, tok.TokenType) {
			t.Fatalf("TokenType %q not one of %v", tok.TokenType, allowed)
		}
		switch tok.ExpiresFrom {
		case ExpiresFromExpiresIn:
		case ExpiresFromJWTExp, ExpiresFromDefaultTTL:
			// Never longer than default_token_ttl when it is set.
			if defaultTTL > 0 && tok.Expiry.Sub(obtainedAt) > defaultTTL {
				t.Fatalf("lifetime %v from %s beyond default_token_ttl %v", tok.Expiry.Sub(obtainedAt), tok.ExpiresFrom, defaultTTL)
			}
		default:
			t.Fatalf("ExpiresFrom = %q", tok.ExpiresFrom)
		}
	})
}

func FuzzMWIUsername(f *testing.F) {
	f.Add("11112222", "testuser", "testseckey", "testpassword")
	f.Add("", "testuser", "testseckey", "testpassword")
	f.Add("11112222", `DOMAIN\user`, "testseckey", "testpassword")
	f.Add("1111", "user", `k\ey`, `pa\ss`)
	f.Add("lbso", "lbso", "lbso", "x")
	f.Add("a", "b", "c", "")
	p, err := LookupProvider("mwi")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, accessCode, username, securityKey, password string) {
		o := Operator{AccessCode: accessCode, Username: username, SecurityKey: securityKey, Password: password}
		got, err := p.ComposeUsername(o)
		parts := []string{accessCode, username, securityKey}
		valid := password != ""
		for _, s := range parts {
			valid = valid && s != "" && !strings.Contains(s, `\`)
		}
		if !valid {
			if err == nil {
				t.Fatalf("ComposeUsername(%+v) = %q, want an error", o, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("ComposeUsername(%+v): %v", o, err)
		}
		if want := append([]string{"lbso"}, parts...); !slices.Equal(strings.Split(got, `\`), want) {
			t.Fatalf("ComposeUsername = %q splits into %q, want %q", got, strings.Split(got, `\`), want)
		}
		// The form encoding on the wire gives the same string back.
		v, err := url.ParseQuery(url.Values{"username": {got}}.Encode())
		if err != nil || v.Get("username") != got {
			t.Fatalf("username %q does not survive form encoding: %q, %v", got, v.Get("username"), err)
		}
	})
}

// The IdP's words reach Vault's responses and logs: whatever an IdP quotes
// back of a secret that was sent, the IdPError must not carry it.
func FuzzErrorRedaction(f *testing.F) {
	// secret, text before it, text after it, mode: bits 0-1 the field quoted
	// in, bits 2-3 the role of the secret, bit 4 quote it form-encoded.
	f.Add("secret", "invalid client secret ", "", uint8(0))
	f.Add("secret", "", " is wrong", uint8(1))
	f.Add("testpassword", "invalid password '", "'", uint8(1|1<<2))
	f.Add("testseckey", `user lbso\11112222\testuser\`, " unknown", uint8(1|3<<2))
	f.Add("password", "client_secret: ", "", uint8(2))
	f.Add("permission denied", "", "", uint8(2))
	f.Add("Forbidden", "", "", uint8(0))
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzY3AiOiJvcGVuaWQifQ.IkZRvpIzQ5nr3xOhYWpEHrPkw0X-QWTHA75IAbM8ZLM",
		"refresh token ", " revoked", uint8(1|2<<2))
	f.Add("S3cr+t/Val:ue=%x", "body: client_secret=", "&grant_type=client_credentials", uint8(1|1<<4))
	f.Add("p@ss w0rd&more", "password=", "", uint8(1|1<<2|1<<4))
	f.Add("abc", "ab\x01c ", "", uint8(1))
	f.Add("a\x00bc", "", "", uint8(1))
	f.Add(strings.Repeat("s", 300), "", "", uint8(1))
	f.Fuzz(func(t *testing.T, secret, before, after string, mode uint8) {
		if len(secret) < 3 {
			return // shorter values are not redacted: they would mangle every message
		}
		e := &Endpoint{Config: "cfg", ClientID: "client", ClientSecret: "client-secret-1", ClientAuth: ClientAuthBasic}
		req := TokenRequest{Grant: GrantPassword, Username: "operator", Password: "hunter22", RefreshToken: "refresh-1"}
		switch (mode >> 2) & 3 {
		case 0:
			e.ClientSecret = secret
		case 1:
			req.Password = secret
		case 2:
			req.Grant, req.RefreshToken = GrantRefreshToken, secret
		case 3:
			req.Redact = []string{secret}
		}
		quoted := secret
		if mode&(1<<4) != 0 {
			quoted = url.QueryEscape(secret)
		}
		field := []string{"error", "error_description", "errorDescription", "error_description"}[mode&3]
		fields := map[string]string{"error": "invalid_request", field: before + quoted + after}
		body, err := json.Marshal(fields)
		if err != nil {
			t.Skip()
		}
		_, err = e.interpret(&http.Response{StatusCode: 400}, body, nil, req, time.Time{})
		ie, ok := err.(*IdPError)
		if !ok {
			t.Fatalf("interpret: %T %v", err, err)
		}
		// "[redacted]" itself, or text beside it, may spell a secret such as
		// "act" or "d]x"; such a match quotes nothing of the IdP's.
		masked := func(s string) string { return strings.ReplaceAll(s, "[redacted]", "\x00") }
		for _, s := range []string{secret, url.QueryEscape(secret)} {
			if strings.Contains(s, "\x00") {
				continue
			}
			for _, got := range []string{ie.Code, ie.Description} {
				if strings.Contains(masked(got), s) {
					t.Fatalf("IdPError quotes %q: Code %q Description %q", s, ie.Code, ie.Description)
				}
			}
			// The whole message, unless the secret is part of the engine's
			// own words or could straddle them (the separators ": ", " (",
			// quotes: a secret " 00" matches ": " + an IdP text "00…", which
			// quotes no secret).
			template := (&IdPError{Config: ie.Config, Status: ie.Status, Detail: ie.Detail}).Error()
			if !strings.ContainsAny(s, `:()" `) && !strings.Contains(template, s) && strings.Contains(masked(ie.Error()), s) {
				t.Fatalf("Error() %q quotes %q", ie.Error(), s)
			}
		}
	})
}
