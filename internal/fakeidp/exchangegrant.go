package fakeidp

import (
	"net/url"
	"time"
)

// Token exchange (RFC 8693) of a Server with Options.TokenExchange: the
// subject tokens it accepts are the ones a test registered, each until its
// expiry on the server's clock or until it is revoked.

// JWTTokenType is RFC 8693 3's type of a JWT subject token.
const JWTTokenType = "urn:ietf:params:oauth:token-type:jwt"

type subjectToken struct {
	expires time.Time
	revoked bool
}

// AllowSubject makes token a valid subject token until expires.
func (s *Server) AllowSubject(token string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subjects[token] = &subjectToken{expires: expires}
}

// RevokeSubject makes token invalid as a subject token from now on.
func (s *Server) RevokeSubject(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.subjects[token]; ok {
		t.revoked = true
	}
}

// SubjectOf is the subject token accessToken was exchanged for ("" when it
// was not issued by a token exchange here).
func (s *Server) SubjectOf(accessToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[accessToken]; ok {
		return t.subject
	}
	return ""
}

func (s *Server) tokenExchangeLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	subject := form.Get("subject_token")
	if subject == "" {
		return nil, invalidRequest("subject_token is required")
	}
	switch form.Get("subject_token_type") {
	case AccessTokenType, JWTTokenType:
	default:
		return nil, invalidRequest("unsupported subject_token_type " + form.Get("subject_token_type"))
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != AccessTokenType {
		return nil, invalidRequest("requested_token_type " + rt + " is not supported")
	}
	if _, has := form["actor_token"]; has {
		return nil, invalidRequest("actor tokens are not accepted")
	}
	scope := form.Get("scope")
	if e := s.checkScope(scope, false); e != nil {
		return nil, e
	}
	t, ok := s.subjects[subject]
	if !ok || t.revoked || !s.now().Before(t.expires) {
		return nil, invalidGrant("subject_token is not active")
	}
	iss := s.issueLocked(clientID, clientID, scope)
	s.access[iss.access].subject = subject
	body := s.shapeLocked(iss, clientID, clientID, scope)
	body["issued_token_type"] = AccessTokenType
	return body, nil
}
