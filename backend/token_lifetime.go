package backend

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// ExpiresFrom names where a token's lifetime came from, shown by creds.
type ExpiresFrom string

// The sources of a token's lifetime, in the order they are tried.
const (
	ExpiresFromExpiresIn  ExpiresFrom = "expires_in"
	ExpiresFromJWTExp     ExpiresFrom = "jwt_exp"
	ExpiresFromDefaultTTL ExpiresFrom = "default_token_ttl"
)

// tokenLifetime is the token's lifetime from obtainedAt: the response's
// expires_in; else, when the access token is a JWT, its exp claim (read for
// the lifetime only, its signature is not checked and nothing else in it is
// trusted), never longer than defaultTTL when that is set; else defaultTTL;
// else an error.
func tokenLifetime(expiresIn json.RawMessage, accessToken string, obtainedAt time.Time, defaultTTL time.Duration) (time.Duration, ExpiresFrom, error) {
	if len(expiresIn) != 0 && string(expiresIn) != "null" {
		d, err := parseExpiresIn(expiresIn)
		return d, ExpiresFromExpiresIn, err
	}
	exp, isJWT, err := jwtExpiry(accessToken)
	if err != nil {
		return 0, "", err
	}
	if isJWT {
		lifetime := exp.Sub(obtainedAt)
		if lifetime < time.Second {
			return 0, "", fmt.Errorf("the token response has no expires_in and the access token's exp claim (%s) is not in the future", exp.UTC().Format(time.RFC3339))
		}
		lifetime = min(lifetime, MaxExpiresIn)
		if defaultTTL > 0 {
			lifetime = min(lifetime, defaultTTL)
		}
		return lifetime, ExpiresFromJWTExp, nil
	}
	if defaultTTL <= 0 {
		return 0, "", fmt.Errorf("the token response has no expires_in, the access token is not a JWT with an exp claim, and the config sets no default_token_ttl")
	}
	return defaultTTL, ExpiresFromDefaultTTL, nil
}

// jwtExpiry reads the exp claim of a JWS compact token without verifying
// it. isJWT is false when the token is not a JWT or has no exp claim; an
// exp that is not a number is an error.
func jwtExpiry(token string) (exp time.Time, isJWT bool, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > MaxResponseBytes {
		return time.Time{}, false, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false, nil
	}
	var claims struct {
		Exp json.RawMessage `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || len(claims.Exp) == 0 || string(claims.Exp) == "null" {
		return time.Time{}, false, nil
	}
	var secs float64
	if err := json.Unmarshal(claims.Exp, &secs); err != nil || math.IsNaN(secs) || secs <= 0 || secs > 1e11 {
		return time.Time{}, false, fmt.Errorf("the token response has no expires_in and the access token's exp claim is not a NumericDate")
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true, nil
}
