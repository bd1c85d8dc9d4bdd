// Config support for any standard server: discovery from an issuer,
// private_key_jwt and tls_client_auth credentials, and the previous
// credential kept by a rotation. The IdP side of each is in backend/
// (discovery.go, clientauth.go, jwtassertion.go, tlsclient.go).

package idptokens

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// Size limits of the PEM fields.
const (
	// revokeTimeout bounds the revocations made for one delete or drop.
	revokeTimeout = 20 * time.Second
	// clientAuthAuto leaves the method to the server's metadata.
	clientAuthAuto = "auto"
)

// clearPrevious forgets the previous credentials of a rotation.
func clearPrevious(e *configEntry) {
	e.PreviousClientSecret, e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = "", "", "", ""
	e.PreviousClientAuth = ""
}

// heldCredentials says which kinds of client credential the config holds.
func (e *configEntry) heldCredentials() backend.HeldCredentials {
	return backend.HeldCredentials{Secret: e.ClientSecret != "", Key: e.PrivateKey != "" || e.GenerateKey, TLSCert: e.TLSClientCert != ""}
}

// discoverAtWrite reads the issuer's metadata when a config is written, so
// that a wrong issuer fails the write (400 naming the issuer and the URL
// read), keeps the token endpoint found when token_url is unset (the
// client index compares it), and checks that the method left to the server
// can be chosen.
func (b *idpBackend) discoverAtWrite(ctx context.Context, st *configState) *logical.Response {
	if st.discovery == nil {
		return nil
	}
	md, err := st.discovery.Fetch(ctx)
	if err != nil {
		return fieldError("issuer", "%v", err)
	}
	if st.entry.TokenURL == "" {
		st.entry.DiscoveredTokenURL = md.TokenEndpoint
	}
	if st.entry.ClientAuth == "" {
		if _, err := backend.ChooseClientAuth(md.TokenEndpointAuthMethods, st.entry.heldCredentials()); err != nil {
			return fieldError("client_auth", "%v", err)
		}
	}
	return nil
}

// authorizationEndpoint is the config's auth_url, or, when it names an
// issuer and no auth_url, the discovered authorization_endpoint.
func (c *configState) authorizationEndpoint(ctx context.Context) (string, error) {
	if c.entry.AuthURL != "" || c.discovery == nil {
		return c.entry.AuthURL, nil
	}
	md, err := c.discovery.Metadata(ctx)
	if err != nil {
		return "", err
	}
	return md.AuthorizationEndpoint, nil
}

// clientCredentials gives the endpoint its private_key_jwt signers (current
// and previous, or the ring of keys made in Vault) and its client certificate.
func (b *idpBackend) clientCredentials(e *configEntry, ep *backend.Endpoint) error {
	var err error
	if e.GenerateKey { // loaded by config (config_keys.go)
		ep.Keys = backend.NewKeyRing()
	}
	ep.PreviousClientAuth = backend.ClientAuth(e.PreviousClientAuth)
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
