package backend

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Token is what an IdP issued, as the engine keeps it.
type Token struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	ObtainedAt   time.Time `json:"obtained_at"`
	Expiry       time.Time `json:"expiry"`
	// ExpiresFrom says where the lifetime came from (token_lifetime.go).
	ExpiresFrom ExpiresFrom `json:"expires_from,omitempty"`
	// IssuedTokenType is RFC 8693's issued_token_type (token exchange).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// Remaining is the token's useful life left at now.
func (t *Token) Remaining(now time.Time) time.Duration {
	return t.Expiry.Sub(now)
}

// MaxExpiresIn bounds what an IdP may claim: a year is already absurd for an
// access token, and beyond it a typo or an attack is likelier than intent.
const MaxExpiresIn = 366 * 24 * time.Hour

// tokenResponse is RFC 6749 5.1. expires_in is raw because IdPs send it as
// a number or as a string.
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token"`
	Scope        json.RawMessage `json:"scope"`
	// IssuedTokenType: RFC 8693 2.2.1.
	IssuedTokenType string `json:"issued_token_type"`
}

// ParseTokenResponse decodes a successful token response. obtainedAt is when
// the request was sent, so the expiry errs early, never late. defaultTTL is
// used when the IdP omits expires_in; zero makes that an error.
func ParseTokenResponse(body []byte, obtainedAt time.Time, defaultTTL time.Duration, allowedTypes []string) (*Token, error) {
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("the token response is not JSON")
	}
	if r.AccessToken == "" {
		return nil, fmt.Errorf("the token response has no access_token")
	}
	tokenType, err := checkTokenType(r.TokenType, allowedTypes)
	if err != nil {
		return nil, err
	}
	lifetime, from, err := tokenLifetime(r.ExpiresIn, r.AccessToken, obtainedAt, defaultTTL)
	if err != nil {
		return nil, err
	}
	scope, err := parseScope(r.Scope)
	if err != nil {
		return nil, err
	}
	return &Token{
		AccessToken:  r.AccessToken,
		TokenType:    tokenType,
		RefreshToken: r.RefreshToken,
		IDToken:      r.IDToken,
		Scope:        scope,
		ObtainedAt:   obtainedAt,
		Expiry:       obtainedAt.Add(lifetime),
		ExpiresFrom:  from,
		// Only quoted back to the caller, never interpreted.
		IssuedTokenType: Sanitize(r.IssuedTokenType, 200),
	}, nil
}

// checkTokenType accepts the types the config allows, case-insensitively
// (RFC 6749 7.1), and returns the config's spelling. An absent type is taken
// as Bearer, which every seed IdP sends anyway.
func checkTokenType(got string, allowed []string) (string, error) {
	if len(allowed) == 0 {
		allowed = []string{"Bearer"}
	}
	if got == "" {
		got = "Bearer"
	}
	for _, a := range allowed {
		if strings.EqualFold(a, got) {
			return a, nil
		}
	}
	return "", fmt.Errorf("the token_type %q is not allowed by the config (allowed_token_types: %s)",
		Sanitize(got, 32), strings.Join(allowed, ", "))
}

// parseExpiresIn reads a present expires_in (see tokenLifetime for an absent one).
func parseExpiresIn(raw json.RawMessage) (time.Duration, error) {
	text := string(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = strings.TrimSpace(s)
	}
	secs, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, fmt.Errorf("the token response's expires_in is not a number")
	}
	// Negated so that NaN, which compares false to everything, is refused.
	if !(secs >= 1 && secs <= MaxExpiresIn.Seconds()) {
		return 0, fmt.Errorf("the token response's expires_in %s is out of range (1s to %s)", Sanitize(text, 24), MaxExpiresIn)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// parseScope accepts RFC 6749's space-separated string, or a JSON array
// which some servers send.
func parseScope(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, " "), nil
	}
	return "", fmt.Errorf("the token response's scope is neither a string nor a list")
}
