package idptokens

import (
	"fmt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

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
	return st, nil
}

// clientCredentials gives the endpoint its private_key_jwt signers (current
// and previous) and its client certificate.
func (b *idpBackend) clientCredentials(e *configEntry, ep *backend.Endpoint) error {
	var err error
	if e.PrivateKey != "" {
		if ep.Signer, err = backend.NewAssertionSigner(e.PrivateKey, e.PrivateKeyID, e.SigningAlg); err != nil {
			return fmt.Errorf("private_key: %w", err)
		}
	}
	if e.PreviousPrivateKey != "" {
		if ep.PreviousSigner, err = backend.NewAssertionSigner(e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg); err != nil {
			return fmt.Errorf("the previous private_key: %w", err)
		}
	}
	if e.TLSClientCert != "" {
		cert, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, b.clock())
		if err != nil {
			return fmt.Errorf("tls_client_cert: %w", err)
		}
		if err := backend.UseClientCertificate(ep.HTTP, cert); err != nil {
			return fmt.Errorf("tls_client_cert: %w", err)
		}
		ep.TLSClientCert = true
	}
	return nil
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
