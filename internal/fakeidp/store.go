package fakeidp

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// codeTTL bounds how long an authorization code may wait to be redeemed.
const codeTTL = 5 * time.Minute

type accessToken struct {
	clientID string
	expires  time.Time
	revoked  bool
	killedAt time.Time // when it was revoked or superseded
	killedBy string    // the grant that superseded it, or "revocation"
	subject  string    // the subject token it was exchanged for, if any
	owner    string    // the person (or client) it acts as
}

// kill revokes the token at now for why, keeping the first kill.
func (t *accessToken) kill(now time.Time, why string) {
	if !t.revoked {
		t.revoked, t.killedAt, t.killedBy = true, now, why
	}
}

type refreshToken struct {
	clientID string
	subject  string
	scope    string
	spent    bool // used, revoked or superseded
}

type authCode struct {
	subject     string // who logged in ("" : the client)
	nonce       string // the authorization request's nonce (OIDC)
	clientID    string
	redirectURI string
	scope       string
	challenge   string
	expires     time.Time
	used        bool
}

// store holds every token and code the server minted; guarded by Server.mu.
type store struct {
	access  map[string]*accessToken
	refresh map[string]*refreshToken
	codes   map[string]*authCode
	// devices are the device codes (Options.DeviceCodes), by device code.
	devices    map[string]*pendingDevice
	approveAll bool
	// subjects are the subject tokens a token exchange accepts.
	subjects map[string]*subjectToken
}

func newStore() store {
	return store{
		access:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
		codes:    map[string]*authCode{},
		devices:  map[string]*pendingDevice{},
		subjects: map[string]*subjectToken{},
	}
}

// randomToken is 32 bytes from crypto/rand, base64url, after a prefix that
// tells a reader in a test log which style minted it.
func randomToken(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) prefix() string { return string(s.opts.Style) + "_" }

// Valid reports whether accessToken was issued here, has not expired and has
// not been revoked or superseded.
func (s *Server) Valid(accessToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.validLocked(accessToken) != ""
}

// validLocked returns the token's client ID, or "" if it is not usable.
func (s *Server) validLocked(tok string) string {
	t, ok := s.access[tok]
	if !ok || t.revoked || !s.now().Before(t.expires) {
		return ""
	}
	return t.clientID
}

// IssueCode mints an authorization code for Options.ClientID as if the user
// had approved the browser step; codeChallenge is an S256 challenge or "".
func (s *Server) IssueCode(redirectURI, scope, codeChallenge string) string {
	return s.IssueCodeFor("", "", redirectURI, scope, codeChallenge)
}

// IssueCodeFor is IssueCode for a login by subject (OIDC: the ID token's
// sub) of an authorization request that carried nonce.
func (s *Server) IssueCodeFor(subject, nonce, redirectURI, scope, codeChallenge string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := randomToken(s.prefix() + "code_")
	s.codes[code] = &authCode{
		subject:     subject,
		nonce:       nonce,
		clientID:    s.opts.ClientID,
		redirectURI: redirectURI,
		scope:       scope,
		challenge:   codeChallenge,
		expires:     s.now().Add(codeTTL),
	}
	return code
}

// RevokeAll invalidates every access and refresh token, as an IdP does when
// it drops its sessions.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.kill(s.now(), "revocation")
	}
	for _, t := range s.refresh {
		t.spent = true
	}
}

// issued is what one successful grant hands out.
type issued struct {
	access, refresh string
	ttl             time.Duration
}

// issueLocked mints tokens for clientID. MicroTek (and any style with
// SingleActive) allows one active token per client, so there every earlier
// token of the client dies first.
func (s *Server) issueLocked(clientID, subject, scope string) issued {
	if s.opts.Style == StyleMicroTek || s.opts.SingleActive {
		for _, t := range s.access {
			if t.clientID == clientID {
				t.kill(s.now(), s.issuing)
			}
		}
		for _, t := range s.refresh {
			if t.clientID == clientID {
				t.spent = true
			}
		}
	}
	out := issued{access: randomToken(s.prefix()), ttl: s.ttl}
	s.access[out.access] = &accessToken{clientID: clientID, expires: s.now().Add(s.ttl), owner: subject}
	if s.opts.RefreshTokens {
		out.refresh = randomToken(s.prefix() + "rt_")
		s.refresh[out.refresh] = &refreshToken{clientID: clientID, subject: subject, scope: scope}
	}
	return out
}

// revokeLocked implements RFC 7009 for either token kind; unknown tokens are
// not an error.
func (s *Server) revokeLocked(clientID, tok string) {
	if t, ok := s.access[tok]; ok && t.clientID == clientID {
		t.kill(s.now(), "revocation")
	}
	if t, ok := s.refresh[tok]; ok && t.clientID == clientID {
		t.spent = true
	}
}
