package fakeidp

import (
	"crypto"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTBearerGrantType is RFC 7523's grant_type.
const JWTBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// JWTBearerOptions configure a strict RFC 7523 2.1 token endpoint.
type JWTBearerOptions struct {
	// Key is the registered public key the assertion must be signed with,
	// KeyID its kid (required in the header when set).
	Key   crypto.PublicKey
	KeyID string
	// Issuer and Subject the assertion must name (Subject "" allows none).
	Issuer, Subject string
	// Subjects, when set, are the subjects the assertion may name instead
	// of Subject: one principal per person (domain-wide delegation).
	Subjects []string
	// Audience the assertion must name; "" means this endpoint's own URL.
	Audience string
	// Google mode: the body holds exactly grant_type and assertion, no
	// client authentication, and the scopes are the assertion's scope claim
	// (space-separated), which must equal Scope.
	Google bool
	Scope  string
	// ClientID and ClientSecret, outside Google mode: when set, the client
	// must authenticate with HTTP Basic; when empty, it must not
	// authenticate at all. FormScope is then the scope form field expected.
	ClientID, ClientSecret string
	FormScope              string
	// Claims are further claims the assertion must carry with these values.
	Claims   map[string]string
	TokenTTL time.Duration // default 1h
}

// JWTBearer is the token endpoint of JWTBearerOptions. Any path serves it.
type JWTBearer struct {
	opts JWTBearerOptions

	mu       sync.Mutex
	jtis     map[string]bool
	tokens   map[string]time.Time
	subjects map[string]string // token -> the assertion's sub
	requests []Recorded
	refused  []string
}

// NewJWTBearer returns the endpoint.
func NewJWTBearer(opts JWTBearerOptions) *JWTBearer {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	return &JWTBearer{opts: opts, jtis: map[string]bool{}, tokens: map[string]time.Time{}, subjects: map[string]string{}}
}

// Requests are the requests received, in order.
func (j *JWTBearer) Requests() []Recorded {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.requests)
}

// Refusals are the error descriptions of refused requests, in order.
func (j *JWTBearer) Refusals() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.refused)
}

// Valid says whether the endpoint issued token and it has not expired.
func (j *JWTBearer) Valid(token string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	exp, ok := j.tokens[token]
	return ok && time.Now().Before(exp)
}

func (j *JWTBearer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, parseErr := readForm(r)
	j.mu.Lock()
	j.requests = append(j.requests, Recorded{Header: r.Header.Clone(), Form: form, Time: time.Now()})
	j.mu.Unlock()
	e := checkPost(r, form, parseErr)
	var sub string
	if e == nil {
		sub, e = j.check(r, form)
	}
	if e != nil {
		j.mu.Lock()
		j.refused = append(j.refused, e.desc)
		j.mu.Unlock()
		writeJSON(w, e.status, map[string]any{"error": e.code, "error_description": e.desc})
		return
	}
	tok := randomToken("jb-")
	j.mu.Lock()
	j.tokens[tok] = time.Now().Add(j.opts.TokenTTL)
	j.subjects[tok] = sub
	j.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer", "expires_in": int64(j.opts.TokenTTL / time.Second),
	})
}

// SubjectOf is the sub of the assertion token was issued for.
func (j *JWTBearer) SubjectOf(token string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.subjects[token]
}

func (j *JWTBearer) check(r *http.Request, form map[string][]string) (string, *oauthError) {
	get := func(k string) string {
		if v := form[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	if get("grant_type") != JWTBearerGrantType {
		return "", errf(400, "unsupported_grant_type", "grant_type must be "+JWTBearerGrantType)
	}
	if e := j.checkClient(r, form); e != nil {
		return "", e
	}
	allowed := []string{"grant_type", "assertion"}
	if !j.opts.Google {
		allowed = append(allowed, "scope", "client_id")
		if get("scope") != j.opts.FormScope {
			return "", invalidScope("scope must be " + j.opts.FormScope + ", got " + get("scope"))
		}
	}
	for k := range form {
		if !slices.Contains(allowed, k) {
			return "", invalidRequest("unexpected parameter " + k)
		}
	}
	return j.checkAssertion(r, get("assertion"))
}

func (j *JWTBearer) checkClient(r *http.Request, form map[string][]string) *oauthError {
	hdr := r.Header.Get("Authorization")
	if j.opts.Google || j.opts.ClientID == "" {
		if hdr != "" || len(form["client_secret"]) > 0 || len(form["client_assertion"]) > 0 {
			return invalidRequest("this endpoint takes no client authentication")
		}
		return nil
	}
	id, secret, ok := parseBasic(hdr)
	if !ok || !secureEqual(id, j.opts.ClientID) || !secureEqual(secret, j.opts.ClientSecret) {
		return invalidClient("client authentication failed")
	}
	return nil
}

type bearerClaims struct {
	jwt.Claims
	Scope string `json:"scope"`
}

// checkAssertion verifies the assertion and returns its subject.
func (j *JWTBearer) checkAssertion(r *http.Request, assertion string) (string, *oauthError) {
	fail := func(e *oauthError) (string, *oauthError) { return "", e }
	if assertion == "" {
		return fail(invalidRequest("assertion is required"))
	}
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return fail(invalidGrant("assertion is not a JWS"))
	}
	if j.opts.KeyID != "" && tok.Headers[0].KeyID != j.opts.KeyID {
		return fail(invalidGrant("assertion kid " + tok.Headers[0].KeyID + " is not registered"))
	}
	var c bearerClaims
	var all map[string]any
	if err := tok.Claims(j.opts.Key, &c, &all); err != nil {
		return fail(invalidGrant("assertion signature does not verify with the registered key"))
	}
	aud := j.opts.Audience
	if aud == "" {
		aud = "http://" + r.Host + r.URL.Path
	}
	now := time.Now()
	switch {
	case c.Issuer != j.opts.Issuer:
		return fail(invalidGrant("iss " + c.Issuer + " is not " + j.opts.Issuer))
	case j.opts.Subjects == nil && c.Subject != j.opts.Subject:
		return fail(invalidGrant("sub " + c.Subject + " is not " + j.opts.Subject))
	case j.opts.Subjects != nil && !slices.Contains(j.opts.Subjects, c.Subject):
		return fail(invalidGrant("sub " + c.Subject + " is not a known subject"))
	case !c.Audience.Contains(aud) || len(c.Audience) != 1:
		return fail(invalidGrant("aud " + strings.Join(c.Audience, ",") + " is not " + aud))
	case c.Expiry == nil || c.IssuedAt == nil || c.ID == "":
		return fail(invalidGrant("exp, iat and jti are required"))
	case !now.Before(c.Expiry.Time()) || c.IssuedAt.Time().After(now.Add(5*time.Second)):
		return fail(invalidGrant("assertion is expired or issued in the future"))
	case c.Expiry.Time().Sub(c.IssuedAt.Time()) > time.Hour:
		return fail(invalidGrant("assertion lives longer than an hour"))
	}
	if j.opts.Google && c.Scope != j.opts.Scope {
		return fail(invalidScope("scope claim must be " + j.opts.Scope + ", got " + c.Scope))
	}
	for k, want := range j.opts.Claims {
		if got, _ := all[k].(string); got != want {
			return fail(invalidGrant("claim " + k + " must be " + want))
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.jtis[c.ID] {
		return fail(invalidGrant("jti replayed"))
	}
	j.jtis[c.ID] = true
	return c.Subject, nil
}
