package idptokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// configEntry is one IdP connection as stored (seal-wrapped) in Vault.
type configEntry struct {
	Provider          string        `json:"provider"`
	TokenURL          string        `json:"token_url"`
	AuthURL           string        `json:"auth_url,omitempty"`
	RevocationURL     string        `json:"revocation_url,omitempty"`
	ClientID          string        `json:"client_id"`
	ClientSecret      string        `json:"client_secret,omitempty"`
	ClientAuth        string        `json:"client_auth"`
	Username          string        `json:"username,omitempty"`
	Password          string        `json:"password,omitempty"`
	AccessCode        string        `json:"access_code,omitempty"`
	SecurityKey       string        `json:"security_key,omitempty"`
	Scopes            []string      `json:"scopes,omitempty"`
	RequestTimeout    time.Duration `json:"request_timeout,omitempty"`
	CACert            string        `json:"ca_cert,omitempty"`
	DefaultTokenTTL   time.Duration `json:"default_token_ttl,omitempty"`
	AllowedTokenTypes []string      `json:"allowed_token_types,omitempty"`
	AllowInsecureHTTP bool          `json:"allow_insecure_http,omitempty"`
	// SingleActiveToken: the IdP kills a client's older tokens when it
	// issues a new one (nil: the preset's default, as for configs stored
	// before the field existed).
	SingleActiveToken *bool `json:"single_active_token,omitempty"`
	// Authorization code flow (path_auth_code.go): allowed redirect URIs, the
	// first being the default, and how long a login may take.
	RedirectURIs []string      `json:"redirect_uris,omitempty"`
	AuthStateTTL time.Duration `json:"auth_state_ttl,omitempty"`
	// Issuer, when set, is read for its metadata (discovery): token,
	// authorization and revocation endpoints that are not set explicitly,
	// and the client authentication methods the server supports.
	Issuer string `json:"issuer,omitempty"`
	// DiscoveredTokenURL is the issuer's token_endpoint as read at the last
	// write, kept when token_url is unset: other configs, on any node,
	// compare their client with it without reading the metadata. Set by
	// the engine only.
	DiscoveredTokenURL string `json:"discovered_token_url,omitempty"`
	// private_key_jwt: the PEM private key, its kid and the JWS algorithm
	// (derived from the key when empty).
	PrivateKey   string `json:"private_key,omitempty"`
	PrivateKeyID string `json:"private_key_id,omitempty"`
	SigningAlg   string `json:"signing_alg,omitempty"`
	// tls_client_auth: the PEM certificate (chain) and its key.
	TLSClientCert string `json:"tls_client_cert,omitempty"`
	TLSClientKey  string `json:"tls_client_key,omitempty"`
	// Rotation: the credentials replaced by the last rotate, tried once when
	// the current one is refused with invalid_client.
	PreviousClientSecret string `json:"previous_client_secret,omitempty"`
	PreviousPrivateKey   string `json:"previous_private_key,omitempty"`
	PreviousPrivateKeyID string `json:"previous_private_key_id,omitempty"`
	PreviousSigningAlg   string `json:"previous_signing_alg,omitempty"`
	// Keys made in Vault (config_keys.go): the timing of their rotation; the
	// keys themselves are stored apart, at keys/<name>. PreviousClientAuth
	// is the method of PreviousClientSecret after a move from a client
	// secret to generated keys. Set by the engine only.
	GenerateKey        bool          `json:"generate_key,omitempty"`
	KeyRotationPeriod  time.Duration `json:"key_rotation_period,omitempty"`
	KeyPublishLead     time.Duration `json:"key_publish_lead,omitempty"`
	KeyOverlap         time.Duration `json:"key_overlap,omitempty"`
	PreviousClientAuth string        `json:"previous_client_auth,omitempty"`
	// device_code grant (RFC 8628): the device authorization endpoint.
	DeviceAuthorizationURL string `json:"device_authorization_url,omitempty"`
	// JWKSURL is where the IdP's public keys are, for ID tokens (default:
	// the issuer's jwks_uri).
	JWKSURL string `json:"jwks_url,omitempty"`
	// Generation changes whenever the client or resource owner changes, so
	// tokens minted for the former identity are never handed out again.
	Generation string `json:"generation"`
}

// sameClient says whether two configs name one client of one IdP: the same
// client_id at the same token endpoint, or at the same issuer (a client_id
// is the authorization server's, whichever of its endpoints is named).
func sameClient(a, b *configEntry) bool {
	if a.ClientID != b.ClientID {
		return false
	}
	if ta, tb := a.tokenEndpoint(), b.tokenEndpoint(); ta != "" && tb != "" && sameURL(ta, tb) {
		return true
	}
	return a.Issuer != "" && b.Issuer != "" && sameURL(a.Issuer, b.Issuer)
}

// tokenEndpoint is where the config's tokens are minted: token_url, else
// the endpoint discovered at the last write ("" for a config stored before
// it was kept, until its next write).
func (c *configEntry) tokenEndpoint() string {
	if c.TokenURL != "" {
		return c.TokenURL
	}
	return c.DiscoveredTokenURL
}

// sameURL compares URLs as a server sees them (normalURL).
func sameURL(a, b string) bool { return normalURL(a) == normalURL(b) }

// operator is the resource owner for the password grant.
func (c *configEntry) operator() backend.Operator {
	return backend.Operator{Username: c.Username, Password: c.Password, AccessCode: c.AccessCode, SecurityKey: c.SecurityKey}
}

// singleActive says whether the IdP keeps one live token per client.
func (c *configEntry) singleActive(p *backend.Provider) bool {
	if c.SingleActiveToken != nil {
		return *c.SingleActiveToken
	}
	return p.SingleActiveToken
}

// configState is a decoded config ready to use: preset and HTTP endpoint.
type configState struct {
	name     string
	entry    *configEntry
	provider *backend.Provider
	endpoint *backend.Endpoint
	// singleActive: every role of the config shares one token, and a new
	// one is minted only once every lease of the current one has ended.
	singleActive bool
	// fingerprints memoises roles' fingerprints (role.go).
	fingerprints sync.Map
	// discovery holds the issuer's metadata when the config names one.
	discovery *backend.Discovery
	// idpKeys are the IdP's public keys, for the ID tokens of bound logins.
	idpKeys *backend.IdPKeySet
}

// config returns the named config, from memory when it can.
func (b *idpBackend) config(ctx context.Context, s logical.Storage, name string) (*configState, error) {
	if _, err := b.loadSettings(ctx, s); err != nil { // the guarded clients need them
		return nil, err
	}
	st, _, err := b.configs.Load(name, func() (*configState, bool, error) {
		e, err := loadConfigEntry(ctx, s, name)
		if err != nil || e == nil {
			return nil, false, err
		}
		st, err := b.newConfigState(name, e)
		return st, err == nil, err
	})
	if err != nil || st == nil {
		return st, err
	}
	return st, b.ensureKeys(ctx, s, st) // from memory but after a change

}

func loadConfigEntry(ctx context.Context, s logical.Storage, name string) (*configEntry, error) {
	return getJSON[configEntry](ctx, s, configPrefix+name)
}

func (b *idpBackend) storeConfig(ctx context.Context, s logical.Storage, st *configState) error {
	if err := putJSON(ctx, s, configPrefix+st.name, st.entry); err != nil {
		return err
	}
	b.dropConfigState(st.name)
	b.configs.Set(st.name, st)
	return nil
}

// dropConfigState forgets a config and closes its idle IdP connections.
func (b *idpBackend) dropConfigState(name string) {
	if st, ok := b.configs.Get(name); ok {
		st.endpoint.HTTP.CloseIdleConnections()
	}
	b.configs.Drop(name)
}

func newGeneration() string {
	buf := make([]byte, 8)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// newConfigState decodes a config for use: its preset and the IdP-side
// endpoint with its credentials, guarded by allowed_hosts at request time
// and wired to the backend's clock, log and metrics. Every config state is
// made here, so none can miss the guard.
func (b *idpBackend) newConfigState(name string, e *configEntry) (*configState, error) {
	p, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return nil, err
	}
	httpClient, err := backend.NewHTTPClient(e.RequestTimeout, e.CACert)
	if err != nil {
		return nil, err // it names ca_cert
	}
	ep := &backend.Endpoint{
		Config:                 name,
		TokenURL:               e.TokenURL,
		RevocationURL:          e.RevocationURL,
		DeviceAuthorizationURL: e.DeviceAuthorizationURL,
		ClientID:               e.ClientID,
		ClientSecret:           e.ClientSecret,
		PreviousClientSecret:   e.PreviousClientSecret,
		ClientAuth:             backend.ClientAuth(e.ClientAuth),
		RawBasic:               p.RawBasic,
		DefaultTokenTTL:        e.DefaultTokenTTL,
		AllowedTokenTypes:      e.AllowedTokenTypes,
		HTTP:                   httpClient,
		Retry:                  backend.RetryWithin(e.RequestTimeout),
		Now:                    b.clock,
		Sleep:                  b.sleepFor,
		Observe:                func(x backend.Exchange) { b.metrics.ObserveExchange(name, x) },
		OnFallback:             b.logFallback,
	}
	if err := b.clientCredentials(e, ep); err != nil {
		return nil, err
	}
	// Requests to hosts outside allowed_hosts are refused when they are
	// made: the settings may change after the config was written.
	httpClient.Transport = backend.GuardTransport(httpClient.Transport, b.allowedHosts)
	st := &configState{name: name, entry: e, provider: p, singleActive: e.singleActive(p), endpoint: ep}
	if e.Issuer != "" {
		st.discovery = &backend.Discovery{Issuer: e.Issuer, HTTP: httpClient, AllowInsecureHTTP: e.AllowInsecureHTTP, Now: b.clock, AllowedHosts: b.allowedHosts}
		ep.Discovery = st.discovery
	}
	st.idpKeys = &backend.IdPKeySet{HTTP: httpClient, Now: b.clock, URL: st.jwksURL}
	return st, nil
}

// jwksURL is the config's jwks_url, or its issuer's discovered jwks_uri.
func (c *configState) jwksURL(ctx context.Context) (string, error) {
	if c.entry.JWKSURL != "" || c.discovery == nil {
		return c.entry.JWKSURL, nil
	}
	md, err := c.discovery.Metadata(ctx)
	if err != nil {
		return "", err
	}
	return md.JWKSURI, nil
}

// logFallback logs and counts a use of a rotation's previous credential.
func (b *idpBackend) logFallback(ev backend.FallbackEvent) {
	b.metrics.SecretFallback(ev.Config, ev.Succeeded)
	if ev.Succeeded {
		b.Logger().Warn("the IdP refused the current client credential (invalid_client) and accepted the previous one: "+
			"register the new one at the IdP before clearing the previous one",
			"config", ev.Config, "operation", ev.Operation)
		return
	}
	b.Logger().Warn("the IdP refused both the current and the previous client credential",
		"config", ev.Config, "operation", ev.Operation, "error", ev.Err)
}

// providerOrDefault is the named preset, or oauth2's for a name no longer
// known (a read must still work).
func providerOrDefault(name string) *backend.Provider {
	if p, err := backend.LookupProvider(name); err == nil {
		return p
	}
	p, _ := backend.LookupProvider(backend.ProviderOAuth2)
	return p
}
