// Config support for any standard server: discovery from an issuer,
// private_key_jwt and tls_client_auth credentials, and the previous
// credential kept by a rotation. The IdP side of each is in backend/
// (discovery.go, clientauth.go, jwtassertion.go, tlsclient.go).

package idptokens

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// Size limits of the PEM fields.
const (
	maxKeyPEMLen  = 16 << 10
	maxCertPEMLen = 64 << 10
	// revokeTimeout bounds the revocations made for one delete or drop.
	revokeTimeout = 20 * time.Second
	// clientAuthAuto leaves the method to the server's metadata.
	clientAuthAuto = "auto"
)

// clearPrevious forgets the previous credentials of a rotation.
func clearPrevious(e *configEntry) {
	e.PreviousClientSecret, e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = "", "", "", ""
}

// validateClientCredentials checks client_auth against the credentials
// held, the PEM fields, and the issuer.
func validateClientCredentials(e *configEntry) *logical.Response {
	if e.Issuer != "" {
		if err := backend.CheckEndpointURL(e.Issuer, e.AllowInsecureHTTP); err != nil {
			return fieldError("issuer", "%v", err)
		}
		if _, err := backend.WellKnownURLs(e.Issuer); err != nil {
			return fieldError("issuer", "%v", err)
		}
	}
	switch e.ClientAuth {
	case clientAuthAuto, "":
		if e.Issuer == "" {
			return fieldError("client_auth", "auto needs an issuer, whose metadata names the methods the server supports")
		}
		e.ClientAuth = ""
	default:
		a, ok := backend.ParseClientAuthMethod(e.ClientAuth)
		if !ok {
			return fieldError("client_auth", "must be basic, post, private_key_jwt, tls_client_auth or none (jwt_bearer and device_code roles), or auto with an issuer; not %q", backend.Sanitize(e.ClientAuth, 40))
		}
		e.ClientAuth = string(a)
	}
	for _, k := range []struct{ field, pem, kid, alg string }{
		{"private_key", e.PrivateKey, e.PrivateKeyID, e.SigningAlg},
		{"private_key", e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg},
	} {
		if k.pem == "" {
			continue
		}
		if _, err := backend.NewAssertionSigner(k.pem, k.kid, k.alg); err != nil {
			return fieldError(k.field, "%v", err)
		}
	}
	if e.SigningAlg != "" && e.PrivateKey == "" {
		return fieldError("signing_alg", "is for private_key_jwt; write private_key too")
	}
	if (e.TLSClientCert == "") != (e.TLSClientKey == "") {
		return fieldError("tls_client_cert", "tls_client_cert and tls_client_key go together")
	}
	if e.TLSClientCert != "" {
		if _, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, time.Now()); err != nil {
			return fieldError("tls_client_cert", "%v", err)
		}
	}
	held := e.heldCredentials()
	switch backend.ClientAuth(e.ClientAuth) {
	case backend.ClientAuthBasic, backend.ClientAuthPost:
		if !held.Secret {
			return fieldError("client_secret", "required for client_auth=%s", e.ClientAuth)
		}
	case backend.ClientAuthPrivateKeyJWT:
		if !held.Key {
			return fieldError("private_key", "required for client_auth=private_key_jwt")
		}
	case backend.ClientAuthNone:
		// No client credential: jwt_bearer's assertion, or a public
		// device_code client (the roles' checks, role_grants.go).
	case backend.ClientAuthTLS:
		if !held.TLSCert {
			return fieldError("tls_client_cert", "tls_client_cert and tls_client_key are required for client_auth=tls_client_auth")
		}
	case "":
		if !held.Secret && !held.Key && !held.TLSCert {
			return fieldError("client_secret", "a client credential is required: client_secret, private_key, or tls_client_cert and tls_client_key")
		}
	}
	return nil
}

// heldCredentials says which kinds of client credential the config holds.
func (e *configEntry) heldCredentials() backend.HeldCredentials {
	return backend.HeldCredentials{Secret: e.ClientSecret != "", Key: e.PrivateKey != "", TLSCert: e.TLSClientCert != ""}
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
