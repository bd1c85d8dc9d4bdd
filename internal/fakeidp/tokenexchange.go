package fakeidp

import (
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
)

// RFC 8693 names.
const (
	TokenExchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	AccessTokenType        = "urn:ietf:params:oauth:token-type:access_token"
)

// TokenExchangeOptions configure a strict RFC 8693 token endpoint.
type TokenExchangeOptions struct {
	// ClientID and ClientSecret the client must present with HTTP Basic.
	ClientID, ClientSecret string
	// ValidSubject and ValidActor say whether a token is an active access
	// token (for example another fake's Valid); nil accepts none.
	ValidSubject, ValidActor func(string) bool
	// Audience and Resource are the values every request must carry, in
	// order (nil: none allowed).
	Audience, Resource []string
	// RequestedTokenType, when set, must be sent.
	RequestedTokenType string
	TokenTTL           time.Duration // default 1h
	// IDToken adds an id_token to every answer, as some servers do beside
	// the issued token.
	IDToken bool
}

// TokenExchange is the token endpoint of TokenExchangeOptions.
type TokenExchange struct {
	opts TokenExchangeOptions

	mu       sync.Mutex
	issued   map[string]exchanged
	requests []Recorded
	refused  []string
}

type exchanged struct {
	subject, actor string
	expires        time.Time
}

// NewTokenExchange returns the endpoint.
func NewTokenExchange(opts TokenExchangeOptions) *TokenExchange {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	return &TokenExchange{opts: opts, issued: map[string]exchanged{}}
}

// Requests are the requests received, in order.
func (x *TokenExchange) Requests() []Recorded {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.requests)
}

// Refusals are the error descriptions of refused requests.
func (x *TokenExchange) Refusals() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.refused)
}

// SubjectOf is the subject token a token was issued for ("" if unknown or
// expired), and the actor token.
func (x *TokenExchange) SubjectOf(token string) (subject, actor string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.issued[token]
	if !ok || !time.Now().Before(e.expires) {
		return "", ""
	}
	return e.subject, e.actor
}

func (x *TokenExchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, parseErr := readForm(r)
	x.mu.Lock()
	x.requests = append(x.requests, Recorded{Header: r.Header.Clone(), Form: form, Time: time.Now()})
	x.mu.Unlock()
	// RFC 8693 2.1: audience and resource may repeat; nothing else may.
	single := maps.Clone(form)
	delete(single, "audience")
	delete(single, "resource")
	e := checkPost(r, single, parseErr)
	if e == nil {
		e = x.check(r, form)
	}
	if e != nil {
		x.mu.Lock()
		x.refused = append(x.refused, e.desc)
		x.mu.Unlock()
		writeJSON(w, e.status, map[string]any{"error": e.code, "error_description": e.desc})
		return
	}
	tok := randomToken("tx-")
	x.mu.Lock()
	x.issued[tok] = exchanged{subject: form.Get("subject_token"), actor: form.Get("actor_token"), expires: time.Now().Add(x.opts.TokenTTL)}
	x.mu.Unlock()
	body := map[string]any{"access_token": tok, "issued_token_type": AccessTokenType,
		"token_type": "Bearer", "expires_in": int64(x.opts.TokenTTL / time.Second)}
	if x.opts.IDToken {
		body["id_token"] = randomToken("tx-id-")
	}
	writeJSON(w, http.StatusOK, body)
}

func (x *TokenExchange) check(r *http.Request, form map[string][]string) *oauthError {
	get := func(k string) string {
		if v := form[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	id, secret, ok := parseBasic(r.Header.Get("Authorization"))
	if !ok || !secureEqual(id, x.opts.ClientID) || !secureEqual(secret, x.opts.ClientSecret) {
		return invalidClient("client authentication failed")
	}
	if get("grant_type") != TokenExchangeGrantType {
		return errf(400, "unsupported_grant_type", "grant_type must be "+TokenExchangeGrantType)
	}
	if get("subject_token_type") != AccessTokenType {
		return invalidRequest("unsupported subject_token_type " + get("subject_token_type"))
	}
	if x.opts.ValidSubject == nil || !x.opts.ValidSubject(get("subject_token")) {
		return invalidGrant("subject_token is not an active access token")
	}
	if _, has := form["actor_token"]; has {
		if get("actor_token_type") != AccessTokenType {
			return invalidRequest("actor_token_type must be " + AccessTokenType)
		}
		if x.opts.ValidActor == nil || !x.opts.ValidActor(get("actor_token")) {
			return invalidGrant("actor_token is not an active access token")
		}
	} else if _, has := form["actor_token_type"]; has {
		return invalidRequest("actor_token_type without actor_token")
	}
	if !slices.Equal(form["audience"], x.opts.Audience) {
		return errf(400, "invalid_target", "audience must be exactly the configured values")
	}
	if !slices.Equal(form["resource"], x.opts.Resource) {
		return errf(400, "invalid_target", "resource must be exactly the configured values")
	}
	if get("requested_token_type") != x.opts.RequestedTokenType {
		return invalidRequest("requested_token_type " + get("requested_token_type") + " is not supported")
	}
	allowed := []string{"grant_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
		"audience", "resource", "requested_token_type", "scope"}
	for k := range form {
		if !slices.Contains(allowed, k) {
			return invalidRequest("unexpected parameter " + k)
		}
	}
	return nil
}
