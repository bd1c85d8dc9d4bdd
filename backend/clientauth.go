package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// ClientAuth is how the client authenticates at the token endpoint.
type ClientAuth string

// The client authentication methods.
const (
	// ClientAuthBasic sends an HTTP Basic header (client_secret_basic).
	ClientAuthBasic ClientAuth = "basic"
	// ClientAuthPost sends client_id and client_secret in the form body (client_secret_post).
	ClientAuthPost ClientAuth = "post"
	// ClientAuthPrivateKeyJWT signs a JWT client assertion with the config's
	// private key (RFC 7523 2.2, OIDC Core 9 private_key_jwt).
	ClientAuthPrivateKeyJWT ClientAuth = "private_key_jwt"
	// ClientAuthTLS presents the config's client certificate in the TLS
	// handshake (RFC 8705 2.1 tls_client_auth); the body names client_id.
	ClientAuthTLS ClientAuth = "tls_client_auth"
	// ClientAuthNone sends no client authentication: for the jwt_bearer
	// grant at servers whose assertion is the only credential (Google), and
	// public device_code clients.
	ClientAuthNone ClientAuth = "none"
)

// ClientAuthMethods are the client_auth values a config may name.
var ClientAuthMethods = []ClientAuth{ClientAuthBasic, ClientAuthPost, ClientAuthPrivateKeyJWT, ClientAuthTLS, ClientAuthNone}

// ParseClientAuthMethod accepts any of ClientAuthMethods, and the
// registered names client_secret_basic and client_secret_post (RFC 7591
// 2) for basic and post.
func ParseClientAuthMethod(s string) (ClientAuth, bool) {
	switch s {
	case "client_secret_basic":
		return ClientAuthBasic, true
	case "client_secret_post":
		return ClientAuthPost, true
	}
	if slices.Contains(ClientAuthMethods, ClientAuth(s)) {
		return ClientAuth(s), true
	}
	return "", false
}

// registeredName is the method's token_endpoint_auth_method name.
func (a ClientAuth) registeredName() string {
	switch a {
	case ClientAuthBasic:
		return "client_secret_basic"
	case ClientAuthPost:
		return "client_secret_post"
	}
	return string(a)
}

// UsesSecret says whether the method sends the client secret.
func (a ClientAuth) UsesSecret() bool { return a == ClientAuthBasic || a == ClientAuthPost }

// HeldCredentials says which client credentials a config holds.
type HeldCredentials struct {
	Secret  bool // client_secret
	Key     bool // private_key
	TLSCert bool // tls_client_cert and tls_client_key
}

func (h HeldCredentials) has(a ClientAuth) bool {
	switch a {
	case ClientAuthPrivateKeyJWT:
		return h.Key
	case ClientAuthTLS:
		return h.TLSCert
	case ClientAuthBasic, ClientAuthPost:
		return h.Secret
	}
	return false
}

// ChooseClientAuth picks the strongest method the server advertises
// (token_endpoint_auth_methods_supported) that the config holds credentials
// for: private_key_jwt, then tls_client_auth, then client_secret_basic, then
// client_secret_post. An empty list means client_secret_basic (RFC 8414 2).
func ChooseClientAuth(advertised []string, held HeldCredentials) (ClientAuth, error) {
	if len(advertised) == 0 {
		advertised = []string{"client_secret_basic"}
	}
	for _, a := range ClientAuthPreference {
		if held.has(a) && slices.Contains(advertised, a.registeredName()) {
			return a, nil
		}
	}
	var have []string
	for _, a := range []struct {
		held bool
		name string
	}{{held.Key, "private_key"}, {held.TLSCert, "tls_client_cert"}, {held.Secret, "client_secret"}} {
		if a.held {
			have = append(have, a.name)
		}
	}
	if len(have) == 0 {
		have = []string{"nothing"}
	}
	shown := make([]string, 0, len(advertised))
	for _, m := range advertised[:min(len(advertised), 12)] {
		shown = append(shown, Sanitize(m, 40))
	}
	return "", fmt.Errorf("the server's token_endpoint_auth_methods_supported (%s) includes no method the config has credentials for (it holds %s); set client_auth or write the credentials",
		strings.Join(shown, ", "), strings.Join(have, ", "))
}

// ClientAuthPreference is ChooseClientAuth's order, strongest first.
var ClientAuthPreference = []ClientAuth{ClientAuthPrivateKeyJWT, ClientAuthTLS, ClientAuthBasic, ClientAuthPost}

// held says which credentials the endpoint has.
func (e *Endpoint) held() HeldCredentials {
	return HeldCredentials{Secret: e.ClientSecret != "", Key: e.Signer != nil || e.Keys != nil, TLSCert: e.TLSClientCert}
}

// IsInvalidClient reports the IdP refusing the client's authentication
// (RFC 6749 5.2 invalid_client, with 400 or 401).
func IsInvalidClient(err error) bool {
	var e *IdPError
	return errors.As(err, &e) && e.Code == "invalid_client" && (e.Status == 400 || e.Status == 401)
}

// FallbackEvent tells that the current client credential was refused with
// invalid_client and the previous one (secret rotation) was tried once.
// It carries no secret.
type FallbackEvent struct {
	Config    string
	Operation string // "token" or "revocation"
	Succeeded bool   // the previous credential was accepted
	Err       error  // the previous credential's error when refused too
}

// previous is the endpoint with the previous credential of its method in
// place of the current one, or nil when there is none.
func (e *Endpoint) previous() *Endpoint {
	p := *e
	switch e.ClientAuth {
	case ClientAuthBasic, ClientAuthPost:
		if e.PreviousClientSecret == "" || e.PreviousClientSecret == e.ClientSecret {
			return nil
		}
		// Swapped rather than cleared, so that the redactor still knows both.
		p.ClientSecret, p.PreviousClientSecret = e.PreviousClientSecret, e.ClientSecret
	case ClientAuthPrivateKeyJWT:
		if e.PreviousSigner == nil {
			return e.previousSecretMethod()
		}
		p.Signer, p.PreviousSigner, p.Keys = e.PreviousSigner, nil, nil
	default:
		return nil
	}
	return &p
}

// withFallback runs op with the current credential and, when the IdP
// answers invalid_client and a previous credential exists, once more with
// the previous one. Both refused: the current one's error, saying so.
func (e *Endpoint) withFallback(operation string, op func(*Endpoint) error) error {
	err := op(e)
	if err == nil || !IsInvalidClient(err) {
		return err
	}
	prev := e.previous()
	if prev == nil {
		return err
	}
	prevErr := op(prev)
	if e.OnFallback != nil {
		e.OnFallback(FallbackEvent{Config: e.Config, Operation: operation, Succeeded: prevErr == nil, Err: prevErr})
	}
	if prevErr == nil {
		return nil
	}
	var idpErr *IdPError
	if errors.As(err, &idpErr) {
		both := *idpErr
		both.Detail = strings.TrimPrefix(both.Detail+"; the previous credential was refused too", "; ")
		return &both
	}
	return err
}

// clientAuthentication adds the client's authentication to a request body
// for an endpoint whose assertion audience is aud: the form to send, the
// Authorization header (empty when none), and what it sent in confidence
// beyond the endpoint's own secrets (a signed assertion), for redaction.
// It runs per HTTP try, so every assertion has a fresh jti.
func (e *Endpoint) clientAuthentication(form url.Values) (url.Values, string, []string, error) {
	switch e.ClientAuth {
	case ClientAuthBasic:
		return form, "Basic " + e.basicCredentials(), nil, nil
	case ClientAuthPost:
		if !form.Has("client_secret") { // form() sets it for token requests
			form = maps.Clone(form)
			form.Set("client_id", e.ClientID)
			form.Set("client_secret", e.ClientSecret)
		}
		return form, "", nil, nil
	case ClientAuthPrivateKeyJWT:
		now := e.now()
		signer := e.signerAt(now)
		if signer == nil {
			return nil, "", nil, errors.New("client_auth is private_key_jwt but the config has no private_key, nor a generated key signing now")
		}
		assertion, err := signer.Assertion(e.ClientID, e.TokenURL, now)
		if err != nil {
			return nil, "", nil, err
		}
		form = maps.Clone(form)
		form.Set("client_id", e.ClientID)
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", assertion)
		return form, "", []string{assertion}, nil
	case ClientAuthNone:
		return form, "", nil, nil
	case ClientAuthTLS:
		if !e.TLSClientCert {
			return nil, "", nil, errors.New("client_auth is tls_client_auth but the config has no tls_client_cert")
		}
		form = maps.Clone(form)
		form.Set("client_id", e.ClientID)
		return form, "", nil, nil
	}
	return nil, "", nil, fmt.Errorf("client_auth %q is not supported", Sanitize(string(e.ClientAuth), 40))
}

// resolve returns the endpoint with what discovery provides filled in:
// token URL, client_auth (when the config leaves it to the server's
// metadata) and, for revocation, the revocation URL. Explicit values win.
// Without discovery, e itself.
func (e *Endpoint) resolve(ctx context.Context, revocation bool) (*Endpoint, error) {
	if e.Discovery == nil {
		if e.ClientAuth == "" {
			r := *e
			r.ClientAuth = ClientAuthBasic
			return &r, nil
		}
		return e, nil
	}
	if e.TokenURL != "" && e.ClientAuth != "" && (!revocation || e.RevocationURL != "") {
		return e, nil
	}
	md, err := e.Discovery.Metadata(ctx)
	if err != nil {
		return nil, discoveryIdPError(e.Config, err)
	}
	r := *e
	if r.ClientAuth == "" {
		if r.ClientAuth, err = ChooseClientAuth(md.TokenEndpointAuthMethods, e.held()); err != nil {
			return nil, &IdPError{Config: e.Config, Status: 200, Detail: Sanitize(err.Error(), 400)}
		}
	}
	mtls := r.ClientAuth == ClientAuthTLS
	if r.TokenURL == "" {
		r.TokenURL = md.TokenEndpoint
		if mtls && md.MTLSEndpointAliases.TokenEndpoint != "" {
			r.TokenURL = md.MTLSEndpointAliases.TokenEndpoint
		}
	}
	if r.RevocationURL == "" {
		r.RevocationURL = md.RevocationEndpoint
		if mtls && md.MTLSEndpointAliases.RevocationEndpoint != "" {
			r.RevocationURL = md.MTLSEndpointAliases.RevocationEndpoint
		}
	}
	if r.TokenURL == "" {
		return nil, &IdPError{Config: e.Config, Status: 200, Detail: "discovery from " + md.Source + " gave no token_endpoint"}
	}
	return &r, nil
}

// discoveryIdPError makes a discovery failure an IdPError, so that it
// reaches the caller as the IdP's failure, naming the metadata URL.
func discoveryIdPError(config string, err error) error {
	var d *DiscoveryError
	if errors.As(err, &d) {
		return &IdPError{Config: config, Status: d.Status, Detail: d.Error(), Temporary: d.Temporary}
	}
	return &IdPError{Config: config, Detail: Sanitize(err.Error(), 400)}
}

// Resolved returns the token URL, revocation URL and client_auth the
// endpoint would use now (discovering them when needed), for display.
func (e *Endpoint) Resolved(ctx context.Context) (tokenURL, revocationURL string, auth ClientAuth, err error) {
	r, err := e.resolve(ctx, true)
	if err != nil {
		return "", "", "", err
	}
	return r.TokenURL, r.RevocationURL, r.ClientAuth, nil
}
