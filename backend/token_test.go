package backend

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// ParseTokenResponse: what an operator would check in a token the engine
// kept, and that every malformed answer is refused with a reason.

var tokenT0 = time.Date(2024, 5, 16, 12, 0, 0, 0, time.UTC)

func TestParseTokenResponseLifetime(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		defaultTTL time.Duration
		want       time.Duration // Expiry - obtainedAt
	}{
		{"number (MWI, MicroTek)", `{"access_token":"a","token_type":"Bearer","expires_in":3600}`, 0, time.Hour},
		{"string", `{"access_token":"a","token_type":"Bearer","expires_in":"3600"}`, 0, time.Hour},
		{"string with spaces", `{"access_token":"a","expires_in":" 60 "}`, 0, time.Minute},
		{"float", `{"access_token":"a","expires_in":90.5}`, 0, 90*time.Second + 500*time.Millisecond},
		{"exponent", `{"access_token":"a","expires_in":3.6e3}`, 0, time.Hour},
		{"Screening Eagle week", `{"access_token":"a","token_type":"Bearer","expires_in":604800}`, 0, 7 * 24 * time.Hour},
		{"exactly MaxExpiresIn", `{"access_token":"a","expires_in":31622400}`, 0, MaxExpiresIn},
		{"one second", `{"access_token":"a","expires_in":1}`, 0, time.Second},
		{"missing, default_token_ttl used", `{"access_token":"a","token_type":"Bearer"}`, 15 * time.Minute, 15 * time.Minute},
		{"null, default_token_ttl used", `{"access_token":"a","expires_in":null}`, 5 * time.Minute, 5 * time.Minute},
		{"present wins over default", `{"access_token":"a","expires_in":120}`, time.Hour, 2 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseTokenResponse([]byte(tc.body), tokenT0, tc.defaultTTL, nil)
			if err != nil {
				t.Fatalf("ParseTokenResponse: %v", err)
			}
			if !tok.ObtainedAt.Equal(tokenT0) {
				t.Errorf("ObtainedAt = %v, want %v", tok.ObtainedAt, tokenT0)
			}
			if got := tok.Expiry.Sub(tokenT0); got != tc.want {
				t.Errorf("Expiry - obtainedAt = %v, want %v", got, tc.want)
			}
			if got := tok.Remaining(tokenT0.Add(time.Second)); got != tc.want-time.Second {
				t.Errorf("Remaining one second later = %v, want %v", got, tc.want-time.Second)
			}
		})
	}
}

func TestParseTokenResponseRefused(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		defaultTTL time.Duration
		allowed    []string
		wantErr    string // substring of the error
	}{
		{"expires_in missing, no default", `{"access_token":"a","token_type":"Bearer"}`, 0, nil, "no expires_in"},
		{"expires_in null, no default", `{"access_token":"a","expires_in":null}`, 0, nil, "no expires_in"},
		{"expires_in negative", `{"access_token":"a","expires_in":-5}`, time.Hour, nil, "out of range"},
		{"expires_in negative string", `{"access_token":"a","expires_in":"-3600"}`, time.Hour, nil, "out of range"},
		{"expires_in zero", `{"access_token":"a","expires_in":0}`, time.Hour, nil, "out of range"},
		{"expires_in zero string", `{"access_token":"a","expires_in":"0"}`, time.Hour, nil, "out of range"},
		{"expires_in absurd", `{"access_token":"a","expires_in":31622401}`, 0, nil, "out of range"},
		{"expires_in absurd exponent", `{"access_token":"a","expires_in":1e12}`, 0, nil, "out of range"},
		{"expires_in sub-second", `{"access_token":"a","expires_in":0.5}`, 0, nil, "out of range"},
		{"expires_in NaN", `{"access_token":"a","expires_in":"NaN"}`, 0, nil, "expires_in"},
		{"expires_in Infinity", `{"access_token":"a","expires_in":"Infinity"}`, 0, nil, "expires_in"},
		{"expires_in non-numeric", `{"access_token":"a","expires_in":"one hour"}`, time.Hour, nil, "not a number"},
		{"expires_in empty string", `{"access_token":"a","expires_in":""}`, time.Hour, nil, "not a number"},
		{"expires_in boolean", `{"access_token":"a","expires_in":true}`, time.Hour, nil, "not a number"},
		{"expires_in object", `{"access_token":"a","expires_in":{"s":1}}`, time.Hour, nil, "not a number"},
		{"access_token missing", `{"token_type":"Bearer","expires_in":3600}`, 0, nil, "no access_token"},
		{"access_token empty", `{"access_token":"","expires_in":3600}`, 0, nil, "no access_token"},
		{"JSON null", `null`, time.Hour, nil, "no access_token"},
		{"not JSON", `access_token=a&expires_in=3600`, time.Hour, nil, "not JSON"},
		{"empty body", ``, time.Hour, nil, "not JSON"},
		{"HTML", "<!DOCTYPE html>\n<html><body><h1>Sign in</h1></body></html>", time.Hour, nil, "not JSON"},
		{"truncated JSON", `{"access_token":"a","expires_in":36`, time.Hour, nil, "not JSON"},
		{"JSON array", `[{"access_token":"a"}]`, time.Hour, nil, "not JSON"},
		{"token_type MAC", `{"access_token":"a","token_type":"mac","expires_in":3600}`, 0, nil, `token_type "mac" is not allowed`},
		{"token_type N_A", `{"access_token":"a","token_type":"N_A","expires_in":3600}`, 0, []string{"Bearer"}, "not allowed"},
		{"token_type Bearer not in allowed list", `{"access_token":"a","token_type":"Bearer","expires_in":3600}`, 0, []string{"DPoP"}, "DPoP"},
		{"scope a number", `{"access_token":"a","expires_in":3600,"scope":42}`, 0, nil, "scope"},
		{"scope a list of numbers", `{"access_token":"a","expires_in":3600,"scope":[1,2]}`, 0, nil, "scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseTokenResponse([]byte(tc.body), tokenT0, tc.defaultTTL, tc.allowed)
			if err == nil {
				t.Fatalf("accepted: %+v (expiry in %v)", tok, tok.Expiry.Sub(tokenT0))
			}
			if tok != nil {
				t.Errorf("returned a token beside the error: %+v", tok)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseTokenResponseTokenType(t *testing.T) {
	tests := []struct {
		name    string
		sent    string // "" omits token_type
		allowed []string
		want    string
	}{
		{"Bearer", "Bearer", nil, "Bearer"},
		{"lower-case bearer", "bearer", nil, "Bearer"},
		{"upper-case BEARER", "BEARER", nil, "Bearer"},
		{"absent is Bearer", "", nil, "Bearer"},
		{"config spelling kept", "BEARER", []string{"bearer"}, "bearer"},
		{"N_A allowed by config", "N_A", []string{"Bearer", "N_A"}, "N_A"},
		{"DPoP allowed, case-insensitive", "dpop", []string{"DPoP"}, "DPoP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"access_token":"a","expires_in":3600`
			if tc.sent != "" {
				body += `,"token_type":"` + tc.sent + `"`
			}
			body += `}`
			tok, err := ParseTokenResponse([]byte(body), tokenT0, 0, tc.allowed)
			if err != nil {
				t.Fatalf("ParseTokenResponse: %v", err)
			}
			if tok.TokenType != tc.want {
				t.Errorf("TokenType = %q, want %q", tok.TokenType, tc.want)
			}
		})
	}
}

func TestParseTokenResponseScope(t *testing.T) {
	tests := []struct {
		name  string
		scope string // raw JSON, "" omits the member
		want  string
	}{
		{"string", `"openid email profile inspect"`, "openid email profile inspect"},
		{"JSON array", `["openid","email","profile","inspect"]`, "openid email profile inspect"},
		{"one-element array", `["public-api"]`, "public-api"},
		{"empty array", `[]`, ""},
		{"absent", ``, ""},
		{"null", `null`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"access_token":"a","expires_in":3600`
			if tc.scope != "" {
				body += `,"scope":` + tc.scope
			}
			body += `}`
			tok, err := ParseTokenResponse([]byte(body), tokenT0, 0, nil)
			if err != nil {
				t.Fatalf("ParseTokenResponse: %v", err)
			}
			if tok.Scope != tc.want {
				t.Errorf("Scope = %q, want %q", tok.Scope, tc.want)
			}
		})
	}
}

// The Screening Eagle document's example answer, verbatim: every token it
// carries is kept, unchanged.
func TestParseTokenResponseKeepsAllTokens(t *testing.T) {
	const (
		access  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJpbnRlZ3JhdGlvbi1kZXYtVk5aUXFEdDRIdiJ9.zsN5ys3qdmcJmJwzZHR9c9LC92KPTh2-NaliF2eSHFc"
		id      = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMzAyIiwiZW1haWwiOiJ0ZXN0QHNjcmVlbmluZ2VhZ2xlLmNvbSJ9.rQrkAyINhdV9E8SFmXvZv8v6gmCpokgmVwZFDU_ox28"
		refresh = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzY3AiOiJvcGVuaWQgZW1haWwgcHJvZmlsZSBvZmZsaW5lIn0.IkZRvpIzQ5nr3xOhYWpEHrPkw0X-QWTHA75IAbM8ZLM"
	)
	body := `{
"scope": "openid email profile inspect",
"token_type": "Bearer",
"access_token": "` + access + `",
"expires_in": 604800,
"id_token": "` + id + `",
"refresh_token": "` + refresh + `"
}`
	tok, err := ParseTokenResponse([]byte(body), tokenT0, 0, nil)
	if err != nil {
		t.Fatalf("ParseTokenResponse: %v", err)
	}
	want := Token{
		AccessToken:  access,
		TokenType:    "Bearer",
		RefreshToken: refresh,
		IDToken:      id,
		Scope:        "openid email profile inspect",
		ObtainedAt:   tokenT0,
		Expiry:       tokenT0.Add(604800 * time.Second),
		ExpiresFrom:  ExpiresFromExpiresIn,
	}
	if *tok != want {
		t.Errorf("got  %+v\nwant %+v", *tok, want)
	}
}

// jwtWithClaims is an unsigned-looking JWS compact token with the claims:
// the engine reads exp for the lifetime only, so no signature is needed.
func jwtWithClaims(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("sig"))
}

func TestParseTokenResponseLifetimeSource(t *testing.T) {
	exp := tokenT0.Add(30 * time.Minute).Unix()
	jwtTok := jwtWithClaims(fmt.Sprintf(`{"sub":"x","exp":%d}`, exp))
	noExp := jwtWithClaims(`{"sub":"x"}`)
	body := func(tok, extra string) string {
		return `{"access_token":"` + tok + `","token_type":"Bearer"` + extra + `}`
	}
	tests := []struct {
		name       string
		body       string
		defaultTTL time.Duration
		want       time.Duration
		from       ExpiresFrom
	}{
		{"expires_in wins over the JWT's exp", body(jwtTok, `,"expires_in":120`), time.Hour, 2 * time.Minute, ExpiresFromExpiresIn},
		{"JWT exp without a default", body(jwtTok, ""), 0, 30 * time.Minute, ExpiresFromJWTExp},
		{"JWT exp shorter than the default", body(jwtTok, ""), time.Hour, 30 * time.Minute, ExpiresFromJWTExp},
		{"JWT exp capped by the default", body(jwtTok, ""), 10 * time.Minute, 10 * time.Minute, ExpiresFromJWTExp},
		{"JWT exp with expires_in null", body(jwtTok, `,"expires_in":null`), 0, 30 * time.Minute, ExpiresFromJWTExp},
		{"JWT exp beyond a year capped", body(jwtWithClaims(fmt.Sprintf(`{"exp":%d}`, tokenT0.Add(3*MaxExpiresIn).Unix())), ""), 0, MaxExpiresIn, ExpiresFromJWTExp},
		{"JWT without exp: default", body(noExp, ""), 15 * time.Minute, 15 * time.Minute, ExpiresFromDefaultTTL},
		{"opaque token: default", body("opaque.token", ""), 15 * time.Minute, 15 * time.Minute, ExpiresFromDefaultTTL},
		{"payload not JSON: default", body("a.bm90IGpzb24.c", ""), 5 * time.Minute, 5 * time.Minute, ExpiresFromDefaultTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseTokenResponse([]byte(tc.body), tokenT0, tc.defaultTTL, nil)
			if err != nil {
				t.Fatalf("ParseTokenResponse: %v", err)
			}
			if got := tok.Expiry.Sub(tokenT0); got != tc.want {
				t.Errorf("lifetime = %v, want %v", got, tc.want)
			}
			if tok.ExpiresFrom != tc.from {
				t.Errorf("ExpiresFrom = %q, want %q", tok.ExpiresFrom, tc.from)
			}
		})
	}
}

func TestParseTokenResponseLifetimeRefused(t *testing.T) {
	tests := []struct {
		name, token string
		defaultTTL  time.Duration
		wantErr     string
	}{
		{"JWT already expired", jwtWithClaims(fmt.Sprintf(`{"exp":%d}`, tokenT0.Add(-time.Minute).Unix())), time.Hour, "not in the future"},
		{"JWT exp a string", jwtWithClaims(`{"exp":"tomorrow"}`), time.Hour, "not a NumericDate"},
		{"JWT exp negative", jwtWithClaims(`{"exp":-5}`), time.Hour, "not a NumericDate"},
		{"opaque, no default", "opaque", 0, "config sets no default_token_ttl"},
		{"JWT without exp, no default", jwtWithClaims(`{"sub":"x"}`), 0, "not a JWT with an exp claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"access_token":"` + tc.token + `","token_type":"Bearer"}`
			tok, err := ParseTokenResponse([]byte(body), tokenT0, tc.defaultTTL, nil)
			if err == nil {
				t.Fatalf("accepted: lifetime %v from %s", tok.Expiry.Sub(tokenT0), tok.ExpiresFrom)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Errorf("error quotes the access token: %q", err)
			}
		})
	}
}
