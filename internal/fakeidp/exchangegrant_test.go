package fakeidp

import (
	"testing"
	"time"
)

func TestServerTokenExchange(t *testing.T) {
	s, ts := newFake(t, Options{TokenExchange: true, Scopes: []string{"api"}})
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.SetClock(clock.Now)
	exchange := func(subject, typ string) result {
		return do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", TokenExchangeGrantType,
			"subject_token", subject, "subject_token_type", typ, "scope", "api")})
	}
	wantError(t, s, exchange("unknown", AccessTokenType), 400, "invalid_grant")
	s.AllowSubject("jwt-ish", clock.Now().Add(time.Minute))
	s.AllowSubject("opaque", clock.Now().Add(time.Hour))
	body := wantToken(t, exchange("jwt-ish", JWTTokenType))
	tok := body["access_token"].(string)
	if body["issued_token_type"] != AccessTokenType || s.SubjectOf(tok) != "jwt-ish" || !s.Valid(tok) {
		t.Fatalf("exchange answered %v, subject %q", body, s.SubjectOf(tok))
	}
	if s.SubjectOf("nope") != "" {
		t.Fatal("SubjectOf names a subject for a token never issued")
	}
	wantError(t, s, exchange("opaque", "urn:example:other"), 400, "invalid_request")
	clock.Advance(time.Minute)
	wantError(t, s, exchange("jwt-ish", JWTTokenType), 400, "invalid_grant") // expired on the server's clock
	wantToken(t, exchange("opaque", AccessTokenType))
	s.RevokeSubject("opaque")
	wantError(t, s, exchange("opaque", AccessTokenType), 400, "invalid_grant")
	if s.TokenRequestsByGrant(TokenExchangeGrantType) != 6 {
		t.Fatalf("exchanges recorded %d, want 6", s.TokenRequestsByGrant(TokenExchangeGrantType))
	}

	off, offTS := newFake(t, Options{})
	off.AllowSubject("opaque", time.Now().Add(time.Hour))
	r := do(t, offTS, off, call{auth: formBasic(testID, testSecret), form: form("grant_type", TokenExchangeGrantType,
		"subject_token", "opaque", "subject_token_type", AccessTokenType)})
	wantError(t, off, r, 400, "unsupported_grant_type")
}
