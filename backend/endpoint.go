package backend

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxResponseBytes caps what is read from an IdP: a token response is a few
// KiB, and an endless body must not exhaust the plugin's memory.
const MaxResponseBytes = 1 << 20

// Endpoint is one config's token endpoint with everything needed to call it.
type Endpoint struct {
	Config            string // config name, quoted in errors
	TokenURL          string
	ClientID          string
	ClientSecret      string
	ClientAuth        ClientAuth
	RawBasic          bool // see Provider.RawBasic
	DefaultTokenTTL   time.Duration
	AllowedTokenTypes []string
	HTTP              *http.Client
	Retry             RetryPolicy
	Now               func() time.Time // for tests; time.Now when nil
	// Sleep waits between tries (tests move a fake clock); nil waits.
	Sleep func(ctx context.Context, d time.Duration) error
	// Observe, when set, is told of every HTTP exchange (for metrics).
	Observe func(Exchange)

	// Standards (clientauth.go, discovery.go, revoke.go): the RFC 7009
	// revocation endpoint; the previous secret or signer of a rotation,
	// tried once when the current one is refused with invalid_client
	// (OnFallback is told); the private_key_jwt signer; whether HTTP
	// presents a client certificate (tls_client_auth); and discovery, which
	// fills TokenURL, RevocationURL and ClientAuth when they are empty.
	RevocationURL        string
	PreviousClientSecret string
	Signer               *AssertionSigner
	PreviousSigner       *AssertionSigner
	TLSClientCert        bool
	Discovery            *Discovery
	OnFallback           func(FallbackEvent)
	// Keys are the keys made in Vault (keyset.go): when set, the one
	// signing at the time signs, in place of Signer. PreviousClientAuth is
	// the method of PreviousClientSecret when it differs from ClientAuth
	// (a move from a client secret to keys made in Vault).
	Keys               *KeyRing
	PreviousClientAuth ClientAuth

	// DeviceAuthorizationURL is RFC 8628's endpoint (grant_device.go).
	DeviceAuthorizationURL string
}

// Exchange describes one HTTP try at the token endpoint (or, when
// DeviceAuthorization is set, at RFC 8628's device authorization endpoint),
// without secrets.
type Exchange struct {
	Grant               GrantType
	DeviceAuthorization bool
	Status              int // 0 when no response arrived
	Duration            time.Duration
	Attempt             int
	Err                 error
}

// TokenRequest is one grant's parameters.
type TokenRequest struct {
	Grant        GrantType
	Scopes       []string
	Username     string // password grant, already composed for the preset
	Password     string
	Code         string // authorization_code grant
	RedirectURI  string
	CodeVerifier string // PKCE (RFC 7636)
	RefreshToken string // refresh_token grant
	Extra        map[string]string
	// Redact lists further secret values that must never be quoted back from
	// an IdP's error (for example MWI's security key).
	Redact []string

	// Assertion signs the jwt_bearer grant's assertion for the resolved
	// token URL, once per HTTP try (a fresh jti each time).
	Assertion AssertionFunc
	// Params are further form fields of the grant (token exchange, device
	// code), set by the engine; secret ones also go in Redact.
	Params url.Values
}

// ReservedParams are form fields the engine sets itself; extra_params must
// not override them.
var ReservedParams = []string{
	"grant_type", "client_id", "client_secret", "scope", "username", "password",
	"code", "redirect_uri", "code_verifier", "refresh_token",
	"client_assertion", "client_assertion_type", "assertion",
	"subject_token", "subject_token_type", "actor_token", "actor_token_type",
	"requested_token_type", "device_code",
}

func (e *Endpoint) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// RequestToken performs the grant, retrying where safe, and returns the
// parsed token. Errors never contain what was sent. With discovery, the
// token URL and method come from the server's metadata; a credential refused
// with invalid_client is retried once with the previous one, if any.
func (e *Endpoint) RequestToken(ctx context.Context, req TokenRequest) (*Token, error) {
	r, err := e.resolve(ctx, false)
	if err != nil {
		return nil, err
	}
	var tok *Token
	err = r.withFallback("token", func(ep *Endpoint) error {
		var err error
		tok, err = ep.requestToken(ctx, req)
		return err
	})
	return tok, err
}

func (e *Endpoint) requestToken(ctx context.Context, req TokenRequest) (*Token, error) {
	form := e.form(req)
	policy := e.Retry
	if policy.Attempts < 1 {
		policy = DefaultRetry
	}
	if policy.MaxElapsed > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, policy.MaxElapsed)
		defer cancel()
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		tok, retryAfter, err := e.try(ctx, req, form, attempt)
		if err == nil {
			return tok, nil
		}
		lastErr = err
		var idpErr *IdPError
		if !errors.As(err, &idpErr) || !idpErr.Temporary || attempt >= policy.Attempts {
			return nil, err
		}
		wait := Sleep
		if e.Sleep != nil {
			wait = e.Sleep
		}
		if wait(ctx, policy.delay(attempt, retryAfter)) != nil {
			return nil, lastErr
		}
	}
}

// try is one HTTP exchange. The second result is the IdP's Retry-After.
func (e *Endpoint) try(ctx context.Context, req TokenRequest, form url.Values, attempt int) (*Token, time.Duration, error) {
	started := e.now()
	form, authHeader, sent, err := e.clientAuthentication(form)
	if err != nil {
		return nil, 0, &IdPError{Config: e.Config, Detail: Sanitize(err.Error(), 200)}
	}
	req.Redact = append(req.Redact[:len(req.Redact):len(req.Redact)], sent...)
	if form, sent, err = req.signAssertion(form, e.TokenURL, started); err != nil {
		return nil, 0, &IdPError{Config: e.Config, Detail: Sanitize(err.Error(), 200)}
	}
	req.Redact = append(req.Redact, sent...)
	httpReq, err := formPost(ctx, e.TokenURL, form, authHeader)
	if err != nil {
		return nil, 0, &IdPError{Config: e.Config, Detail: "the token_url cannot be used"}
	}
	resp, err := e.HTTP.Do(httpReq)
	if err != nil {
		// A host outside allowed_hosts (hosts.go) stays outside: no retry.
		idpErr := &IdPError{Config: e.Config, Detail: networkDetail(err), Temporary: ctx.Err() == nil && !errors.Is(err, ErrHostNotAllowed)}
		e.observe(req.Grant, 0, started, attempt, idpErr)
		return nil, 0, idpErr
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	tok, err := e.interpret(resp, body, readErr, req, started)
	e.observe(req.Grant, resp.StatusCode, started, attempt, err)
	return tok, parseRetryAfter(resp.Header, e.now()), err
}

func (e *Endpoint) interpret(resp *http.Response, body []byte, readErr error, req TokenRequest, started time.Time) (*Token, error) {
	idpErr := &IdPError{Config: e.Config, Status: resp.StatusCode}
	switch {
	case readErr != nil:
		idpErr.Detail, idpErr.Temporary = "the response could not be read", true
		return nil, idpErr
	case len(body) > MaxResponseBytes:
		idpErr.Detail = fmt.Sprintf("the response is larger than %d bytes", MaxResponseBytes)
		return nil, idpErr
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		idpErr.Detail = "the token endpoint redirected; redirects are not followed"
		return nil, idpErr
	case resp.StatusCode != http.StatusOK:
		parseErrorBody(idpErr, body, e.redactor(req))
		idpErr.Temporary = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		return nil, idpErr
	}
	allowed := e.AllowedTokenTypes
	if req.Grant == GrantTokenExchange {
		allowed = exchangeTokenTypes(allowed)
	}
	tok, err := ParseTokenResponse(body, started, e.DefaultTokenTTL, allowed)
	if err != nil {
		idpErr.Detail = err.Error()
		return nil, idpErr
	}
	return tok, nil
}

// form builds the request body for the grant.
func (e *Endpoint) form(req TokenRequest) url.Values {
	form := url.Values{}
	for k, v := range req.Extra {
		form.Set(k, v)
	}
	form.Set("grant_type", req.Grant.Wire())
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	switch req.Grant {
	case GrantPassword:
		form.Set("username", req.Username)
		form.Set("password", req.Password)
	case GrantAuthorizationCode:
		form.Set("code", req.Code)
		if req.RedirectURI != "" {
			form.Set("redirect_uri", req.RedirectURI)
		}
		if req.CodeVerifier != "" {
			form.Set("code_verifier", req.CodeVerifier)
		}
	case GrantRefreshToken:
		form.Set("refresh_token", req.RefreshToken)
	}
	for k, vs := range req.Params {
		form[k] = vs
	}
	if e.ClientAuth == ClientAuthPost {
		form.Set("client_id", e.ClientID)
		form.Set("client_secret", e.ClientSecret)
	} else if req.Grant == GrantAuthorizationCode {
		// RFC 6749 4.1.3: client_id accompanies the code even with Basic auth.
		form.Set("client_id", e.ClientID)
	}
	return form
}

// basicCredentials is the Basic header value: raw for presets whose document
// shows base64(client_id:client_secret), RFC 6749 2.3.1 form-encoded otherwise.
func (e *Endpoint) basicCredentials() string {
	id, secret := e.ClientID, e.ClientSecret
	if !e.RawBasic {
		id, secret = url.QueryEscape(id), url.QueryEscape(secret)
	}
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// redactor removes anything the engine sent in confidence from the IdP's
// words: an IdP that echoes its request must not make Vault print a secret.
func (e *Endpoint) redactor(req TokenRequest) func(string) string {
	secrets := append([]string{e.ClientSecret, e.PreviousClientSecret, req.Password, req.Username, req.Code,
		req.CodeVerifier, req.RefreshToken, e.basicCredentials()}, req.Redact...)
	return func(text string) string {
		for _, s := range secrets {
			if len(s) < 3 {
				continue
			}
			for _, form := range []string{s, url.QueryEscape(s)} {
				text = strings.ReplaceAll(text, form, "[redacted]")
			}
		}
		return text
	}
}

func (e *Endpoint) observe(g GrantType, status int, started time.Time, attempt int, err error) {
	if e.Observe != nil {
		e.Observe(Exchange{Grant: g, Status: status, Duration: e.now().Sub(started), Attempt: attempt, Err: err})
	}
}

// networkDetail describes a transport failure without the URL's query or
// anything else the error might carry.
func networkDetail(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return Sanitize(err.Error(), 200)
}

// formPost is an RFC 6749 form POST to an IdP endpoint (token or
// revocation), with the client's Authorization header when it has one.
func formPost(ctx context.Context, endpoint string, form url.Values, authHeader string) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Cache-Control", "no-cache") // as MWI's document sends it
	if authHeader != "" {
		r.Header.Set("Authorization", authHeader)
	}
	return r, nil
}
