package idptokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	// Authorization code flow (path_auth_code.go): allowed redirect URIs, the
	// first being the default, and how long a login may take.
	RedirectURIs []string      `json:"redirect_uris,omitempty"`
	AuthStateTTL time.Duration `json:"auth_state_ttl,omitempty"`
	// Any standard server (config_credentials.go): discovery, private_key_jwt, tls_client_auth
	// and the previous credentials of a rotation.
	standardsEntry
	// The grants of issue 11 (config_grants.go): the device authorization
	// endpoint.
	grantsConfigEntry
	// Generation changes whenever the client or resource owner changes, so
	// tokens minted for the former identity are never handed out again.
	Generation string `json:"generation"`
}

// identity is what a token belongs to: a change means a new generation.
func (c *configEntry) identity() [7]string {
	return [7]string{c.Provider, c.TokenURL, c.ClientID, c.Username, c.AccessCode, c.SecurityKey, c.Issuer}
}

// operator is the resource owner for the password grant.
func (c *configEntry) operator() backend.Operator {
	return backend.Operator{Username: c.Username, Password: c.Password, AccessCode: c.AccessCode, SecurityKey: c.SecurityKey}
}

// configState is a decoded config ready to use: preset and HTTP endpoint.
type configState struct {
	name     string
	entry    *configEntry
	provider *backend.Provider
	endpoint *backend.Endpoint
	// fingerprints memoises roles' fingerprints (creds_fast.go).
	fingerprints sync.Map
	// discovery holds the issuer's metadata when the config names one.
	discovery *backend.Discovery
}

func newConfigState(name string, e *configEntry, now func() time.Time, m *backend.Metrics) (*configState, error) {
	p, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return nil, err
	}
	httpClient, err := backend.NewHTTPClient(e.RequestTimeout, e.CACert)
	if err != nil {
		return nil, err
	}
	st := &configState{
		name:     name,
		entry:    e,
		provider: p,
		endpoint: &backend.Endpoint{
			Config:            name,
			TokenURL:          e.TokenURL,
			ClientID:          e.ClientID,
			ClientSecret:      e.ClientSecret,
			ClientAuth:        backend.ClientAuth(e.ClientAuth),
			RawBasic:          p.RawBasic,
			DefaultTokenTTL:   e.DefaultTokenTTL,
			AllowedTokenTypes: e.AllowedTokenTypes,
			HTTP:              httpClient,
			Now:               now,
			Observe:           func(x backend.Exchange) { m.ObserveExchange(name, x) },
		},
	}
	if err := setupStandards(st, now); err != nil {
		return nil, err
	}
	return st, nil
}

// newConfigState decodes a config for use: the IdP-side endpoint, held to
// allowed_hosts at request time and wired to the backend's log and metrics.
// Every config state is made here, so none can miss the guard.
func (b *idpBackend) newConfigState(name string, e *configEntry) (*configState, error) {
	st, err := newConfigState(name, e, b.clock, &b.metrics)
	if err != nil {
		return nil, err
	}
	b.guardHosts(st)
	return st, nil
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
	return st, err
}

func loadConfigEntry(ctx context.Context, s logical.Storage, name string) (*configEntry, error) {
	raw, err := s.Get(ctx, configPrefix+name)
	if err != nil || raw == nil {
		return nil, err
	}
	var e configEntry
	if err := raw.DecodeJSON(&e); err != nil {
		return nil, fmt.Errorf("stored config %q is unreadable: %w", name, err)
	}
	return &e, nil
}

func (b *idpBackend) storeConfig(ctx context.Context, s logical.Storage, st *configState) error {
	raw, err := logical.StorageEntryJSON(configPrefix+st.name, st.entry)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, raw); err != nil {
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
