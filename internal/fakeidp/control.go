package fakeidp

import (
	"maps"
	"net/http"
	"net/url"
	"time"
)

// Test controls and observations. Everything here takes s.mu.

// TokenRequests is the number of requests that reached the token endpoint,
// whatever their method or outcome.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// TokenRequestsByGrant counts token requests whose body named grant as
// grant_type (as sent, valid or not).
func (s *Server) TokenRequestsByGrant(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byGrant[grant]
}

// LastRequest is the last token-endpoint request, or the zero Recorded.
func (s *Server) LastRequest() Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return Recorded{}
	}
	return s.requests[len(s.requests)-1].clone()
}

// Requests returns every token-endpoint request, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// FailNext makes the next n token requests answer status with an error body
// in the style's format (429 adds Retry-After: 1). The failure comes before
// any validation, so it consumes no code or refresh token.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failNextStatus = n, status
}

// SetFailEvery makes every k-th token request from now on fail with status
// (k=2 fails the 2nd, 4th, ...); k <= 0 turns it off. FailNext wins when both
// apply.
func (s *Server) SetFailEvery(k int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failEvery, s.failEveryStatus, s.failEverySeen = k, status, 0
}

// SetDelay makes the token endpoint wait d before answering (the wait ends
// early if the client gives up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetTokenTTL changes the lifetime of tokens issued from now on; d <= 0
// restores the default of 1h.
func (s *Server) SetTokenTTL(d time.Duration) {
	if d <= 0 {
		d = defaultTTL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// SetClock makes the server read time from now (tests with a fake clock):
// expiry, kill times and recorded request times follow it.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Loss is how an answer the server computed fails to reach the client.
type Loss int

const (
	// LossGateway answers 502 as a gateway in front of the IdP would.
	LossGateway Loss = iota + 1
	// LossHangUp closes the connection without an answer (a timeout after
	// the IdP acted, from the client's side).
	LossHangUp
)

// LoseNextAnswers makes the next n successful grants happen (tokens are
// minted, and on MicroTek the older ones die) while the client never sees
// the answer.
func (s *Server) LoseNextAnswers(n int, how Loss) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseNext, s.loseHow = n, how
}

// KilledAt says when accessToken was revoked or superseded, if it was.
func (s *Server) KilledAt(accessToken string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[accessToken]
	if !ok || !t.revoked {
		return time.Time{}, false
	}
	return t.killedAt, true
}

// KilledBy names what killed accessToken: the grant_type of the issue that
// superseded it (single-active), or "revocation".
func (s *Server) KilledBy(accessToken string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[accessToken]
	if !ok || !t.revoked {
		return "", false
	}
	return t.killedBy, true
}

// IssuedAccessTokens lists every access token the server minted.
func (s *Server) IssuedAccessTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.access))
	for tok := range s.access {
		out = append(out, tok)
	}
	return out
}

// ExpiresAt is when accessToken expires; false for a token not issued here.
func (s *Server) ExpiresAt(accessToken string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[accessToken]
	if !ok {
		return time.Time{}, false
	}
	return t.expires, true
}

// MaxConcurrentTokenRequests is the most token requests the server was
// handling at one time: more than 1 means two grants overlapped.
func (s *Server) MaxConcurrentTokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// PendingFaults is how many injected failures and losses are still to come.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failNext + s.loseNext
}

// takeLoss says whether the answer just computed is to be lost, and how.
func (s *Server) takeLoss() Loss {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loseNext == 0 {
		return 0
	}
	s.loseNext--
	return s.loseHow
}

// enter and leave count token requests in progress.
func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// record stores the request and decides, under the same lock, whether it is
// one of the injected failures, so concurrent requests count exactly.
func (s *Server) record(r *http.Request, form url.Values) (delay time.Duration, fail *oauthError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Recorded{Header: r.Header.Clone(), Form: cloneValues(form), Time: s.now()})
	if g, ok := form["grant_type"]; ok && len(g) > 0 {
		s.byGrant[g[0]]++
	}
	status := 0
	if s.failEvery > 0 {
		s.failEverySeen++
		if s.failEverySeen%s.failEvery == 0 {
			status = s.failEveryStatus
		}
	}
	if s.failNext > 0 {
		s.failNext--
		status = s.failNextStatus
	}
	if status != 0 {
		fail = injectedError(status)
	}
	return s.delay, fail
}

func (r Recorded) clone() Recorded {
	return Recorded{Header: r.Header.Clone(), Form: cloneValues(r.Form), Time: r.Time}
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := maps.Clone(v)
	for k, vs := range out {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// RefuseRefreshes spends every refresh token issued so far: a refresh with
// one of them gets invalid_grant. Access tokens live on.
func (s *Server) RefuseRefreshes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.refresh {
		t.spent = true
	}
}

// SetBeforeAnswer makes the token endpoint call fn with the grant_type sent
// once the answer is computed (tokens minted, codes spent) and before it is
// written, so a test can act while the request is in flight. fn is called
// without the server's lock; nil turns it off.
func (s *Server) SetBeforeAnswer(fn func(grant string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeAnswer = fn
}

// OwnerOf is the person (or client) accessToken acts as: who logged in for
// it, or the client of a client_credentials grant; "" for a token not
// issued here.
func (s *Server) OwnerOf(accessToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[accessToken]; ok {
		return t.owner
	}
	return ""
}
