package fakeidp

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// handleToken is the token endpoint: record, wait, maybe fail on purpose,
// then validate strictly and grant.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.enter()
	left := false
	defer func() {
		if !left {
			s.leave()
		}
	}()
	form, parseErr := readForm(r)
	delay, fail := s.record(r, form)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	grant := form.Get("grant_type")
	if fail == nil {
		fail = checkPost(r, form, parseErr)
	}
	var body map[string]any
	if fail == nil {
		body, fail = s.grant(r, form)
	}
	s.mu.Lock()
	before := s.beforeAnswer
	s.mu.Unlock()
	if before != nil {
		before(grant)
	}
	status := http.StatusOK
	loss := Loss(0)
	if fail == nil {
		loss = s.takeLoss()
	}
	switch {
	case fail != nil:
		status = fail.status
		s.writeError(w, fail)
	case loss == LossGateway:
		status = http.StatusBadGateway
		http.Error(w, "bad gateway", status)
	case loss == LossHangUp:
		// Done before the client can see the hang-up and try again.
		status, left = 0, true
		s.leave()
		hangUp(w)
	default:
		writeJSON(w, status, body)
	}
	if cb := s.opts.OnTokenRequest; cb != nil {
		code := ""
		if fail != nil {
			code = fail.code
		}
		cb(grant, status, code)
	}
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// grant authenticates the client and runs the requested grant.
func (s *Server) grant(r *http.Request, form url.Values) (map[string]any, *oauthError) {
	clientID, e := s.authenticateClient(r, form)
	if e != nil {
		return nil, e
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return nil, invalidRequest("grant_type is required")
	}
	if !s.grantAllowed(grant) {
		return nil, errf(400, "unsupported_grant_type", "grant_type "+grant+" is not supported")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuing = grant
	switch grant {
	case "client_credentials":
		return s.clientCredentialsLocked(clientID, form)
	case "password":
		return s.passwordLocked(clientID, form)
	case "authorization_code":
		return s.authorizationCodeLocked(clientID, form)
	case DeviceGrantType:
		return s.deviceCodeLocked(clientID, form)
	case TokenExchangeGrantType:
		return s.tokenExchangeLocked(clientID, form)
	default: // refresh_token
		return s.refreshLocked(clientID, form)
	}
}

// grantAllowed follows the documents: MWI password, MicroTek client
// credentials, MyID authorization code only, Screening Eagle both of its
// listed grants; refresh_token only where refresh tokens are issued, the
// device and token-exchange grants only where the options turn them on.
func (s *Server) grantAllowed(g string) bool {
	switch g {
	case "refresh_token":
		return s.opts.RefreshTokens
	case DeviceGrantType:
		return s.opts.DeviceCodes
	case TokenExchangeGrantType:
		return s.opts.TokenExchange
	}
	switch s.opts.Style {
	case StyleMWI:
		return g == "password"
	case StyleMicroTek:
		return g == "client_credentials"
	case StyleMyID:
		return g == "authorization_code"
	case StyleScreeningEagle:
		return g == "client_credentials" || g == "authorization_code"
	}
	return g == "client_credentials" || g == "password" || g == "authorization_code"
}

func (s *Server) clientCredentialsLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	scope := form.Get("scope")
	// Screening Eagle and MicroTek both mark scope as required.
	required := s.opts.Style == StyleScreeningEagle || s.opts.Style == StyleMicroTek
	if e := s.checkScope(scope, required); e != nil {
		return nil, e
	}
	return s.responseLocked(clientID, clientID, scope), nil
}

func (s *Server) passwordLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	user, pass := form.Get("username"), form.Get("password")
	if user == "" || pass == "" {
		return nil, invalidRequest("username and password are required")
	}
	scope := form.Get("scope")
	// MWI: scope is the api_id being asked for, always sent.
	if e := s.checkScope(scope, s.opts.Style == StyleMWI); e != nil {
		return nil, e
	}
	// MWI's username is the composed lbso\<access_code>\<username>\<key>;
	// comparing it whole proves the plugin composed it with backslashes.
	if !secureEqual(user, s.opts.Username) || !secureEqual(pass, s.opts.Password) {
		return nil, invalidGrant("invalid username or password")
	}
	// The subject is not the username: MWI's carries the security key.
	return s.responseLocked(clientID, "resource-owner", scope), nil
}

func (s *Server) authorizationCodeLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	code, redirect := form.Get("code"), form.Get("redirect_uri")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	c, ok := s.codes[code]
	if !ok || c.clientID != clientID {
		return nil, invalidGrant("unknown authorization code")
	}
	if c.used {
		return nil, invalidGrant("authorization code already used")
	}
	// Any presentation spends the code, as real servers delete it on lookup.
	c.used = true
	if !s.now().Before(c.expires) {
		return nil, invalidGrant("authorization code expired")
	}
	if redirect == "" {
		return nil, invalidRequest("redirect_uri is required")
	}
	if redirect != c.redirectURI {
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	}
	if e := checkVerifier(c.challenge, form); e != nil {
		return nil, e
	}
	subject := c.subject
	if subject == "" {
		subject = clientID
	}
	body := s.responseLocked(clientID, subject, c.scope)
	if s.opts.OIDC && c.nonce != "" {
		ttl, _ := body["expires_in"].(int64)
		body["id_token"] = s.oidcIDTokenLocked(clientID, subject, c.nonce, time.Duration(ttl)*time.Second)
	}
	return body, nil
}

// refreshLocked rotates: the presented refresh token is spent and a new one
// issued, so a replay proves the plugin stored the rotated token.
func (s *Server) refreshLocked(clientID string, form url.Values) (map[string]any, *oauthError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	t, ok := s.refresh[rt]
	if !ok || t.clientID != clientID || t.spent {
		return nil, invalidGrant("refresh token is invalid, revoked or already used")
	}
	scope := t.scope
	if req := form.Get("scope"); req != "" {
		if e := s.checkScope(req, false); e != nil {
			return nil, e
		}
		if !scopeSubset(req, t.scope) {
			return nil, invalidScope("scope exceeds the original grant")
		}
		scope = req
	}
	t.spent = true
	return s.responseLocked(clientID, t.subject, scope), nil
}

// responseLocked issues tokens and shapes the success body per style: MWI and
// MicroTek documents show only access_token, expires_in and token_type;
// the others also return the granted scope.
func (s *Server) responseLocked(clientID, subject, scope string) map[string]any {
	return s.shapeLocked(s.issueLocked(clientID, subject, scope), clientID, subject, scope)
}

// shapeLocked is the success body of iss.
func (s *Server) shapeLocked(iss issued, clientID, subject, scope string) map[string]any {
	body := map[string]any{"access_token": iss.access, "token_type": "Bearer"}
	secs := int64(iss.ttl / time.Second)
	switch {
	case s.opts.OmitExpiresIn:
	case s.opts.ExpiresInAsString:
		body["expires_in"] = strconv.FormatInt(secs, 10)
	default:
		body["expires_in"] = secs
	}
	switch s.opts.Style {
	case StyleScreeningEagle:
		body["scope"] = scope
	case StyleMyID, StyleOAuth2:
		if scope != "" {
			body["scope"] = scope
		}
	}
	if iss.refresh != "" {
		body["refresh_token"] = iss.refresh
	}
	switch {
	case s.opts.OIDC:
		body["id_token"] = s.oidcIDTokenLocked(clientID, subject, "", iss.ttl)
	case s.opts.IDTokens:
		body["id_token"] = s.idToken(clientID, subject, iss.ttl)
	}
	return body
}
