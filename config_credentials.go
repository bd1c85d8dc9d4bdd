// Config support for any standard server: discovery from an issuer,
// private_key_jwt and tls_client_auth credentials, and the previous
// credential kept by a rotation. The IdP side of each is in backend/
// (discovery.go, clientauth.go, jwtassertion.go, tlsclient.go).

package idptokens

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// standardsEntry is the part of a stored config added by issue 7.
type standardsEntry struct {
	// Issuer, when set, is read for its metadata (discovery): token,
	// authorization and revocation endpoints that are not set explicitly,
	// and the client authentication methods the server supports.
	Issuer string `json:"issuer,omitempty"`
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
}

// Size limits of the PEM fields.
const (
	maxKeyPEMLen  = 16 << 10
	maxCertPEMLen = 64 << 10
	// revokeTimeout bounds the revocations made for one delete or drop.
	revokeTimeout = 20 * time.Second
	// clientAuthAuto leaves the method to the server's metadata.
	clientAuthAuto = "auto"
)

// credentialSecretFields are write-only like secretFields; a read shows
// <field>_set. They are not in secretFields because presets never need them.
var credentialSecretFields = []string{"private_key", "tls_client_key"}

func standardsConfigFields(secret func(string) *framework.FieldSchema) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"issuer": {Type: framework.TypeString, Description: "Issuer identifier: its metadata (<issuer>/.well-known/openid-configuration, " +
			"else RFC 8414 oauth-authorization-server) gives token_url, auth_url, revocation_url and, with client_auth unset or auto, the method."},
		"private_key":     secret("PEM private key (RSA 2048+ or EC P-256) for client_auth=private_key_jwt."),
		"private_key_id":  {Type: framework.TypeString, Description: "kid header of the client assertions (the key's id in the JWKS registered at the IdP)."},
		"signing_alg":     {Type: framework.TypeString, Description: "JWS algorithm of the client assertions: RS256, PS256 or ES256. Default from the key: RS256 for RSA, ES256 for EC."},
		"tls_client_cert": {Type: framework.TypeString, Description: "PEM client certificate (leaf first) for client_auth=tls_client_auth (RFC 8705)."},
		"tls_client_key":  secret("PEM private key of tls_client_cert."),
	}
}

// addStandardsData adds the standards fields to a config read.
func addStandardsData(data map[string]any, e *configEntry) {
	data["issuer"] = e.Issuer
	data["private_key_id"] = e.PrivateKeyID
	data["signing_alg"] = e.SigningAlg
	data["tls_client_cert"] = e.TLSClientCert
	data["private_key_set"] = e.PrivateKey != ""
	data["tls_client_key_set"] = e.TLSClientKey != ""
	data["previous_client_secret_set"] = e.PreviousClientSecret != ""
	data["previous_private_key_set"] = e.PreviousPrivateKey != ""
	if e.ClientAuth == "" && e.Issuer != "" {
		data["client_auth"] = clientAuthAuto
	}
}

// heldSecrets is every write-only value of a config, by field name.
func heldSecrets(e *configEntry) map[string]string {
	return map[string]string{
		"client_secret": e.ClientSecret, "password": e.Password, "security_key": e.SecurityKey,
		"private_key": e.PrivateKey, "tls_client_key": e.TLSClientKey,
	}
}

// clearPrevious forgets the previous credentials of a rotation.
func clearPrevious(e *configEntry) {
	e.PreviousClientSecret, e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = "", "", "", ""
}

// validateClientCredentials checks client_auth against the credentials
// held, the PEM fields, and the issuer.
func validateClientCredentials(e *configEntry) *logical.Response {
	for _, t := range []struct{ field, value string }{
		{"issuer", e.Issuer}, {"private_key_id", e.PrivateKeyID}, {"signing_alg", e.SigningAlg}, {"client_auth", e.ClientAuth},
		{"client_secret", e.PreviousClientSecret},
	} {
		if resp := checkText(t.field, t.value, maxFieldLen); resp != nil {
			return resp
		}
	}
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
		if len(k.pem) > maxKeyPEMLen {
			return fieldError(k.field, "longer than %d bytes", maxKeyPEMLen)
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
		if len(e.TLSClientCert) > maxCertPEMLen || len(e.TLSClientKey) > maxKeyPEMLen {
			return fieldError("tls_client_cert", "tls_client_cert or tls_client_key is too long")
		}
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

// setupStandards gives a new config state's endpoint its revocation URL,
// previous secret, signers, client certificate and discovery.
func setupStandards(st *configState, now func() time.Time) error {
	e, ep := st.entry, st.endpoint
	ep.RevocationURL = e.RevocationURL
	ep.DeviceAuthorizationURL = e.DeviceAuthorizationURL
	ep.PreviousClientSecret = e.PreviousClientSecret
	var err error
	if e.PrivateKey != "" {
		if ep.Signer, err = backend.NewAssertionSigner(e.PrivateKey, e.PrivateKeyID, e.SigningAlg); err != nil {
			return errors.New("private_key " + err.Error())
		}
	}
	if e.PreviousPrivateKey != "" {
		if ep.PreviousSigner, err = backend.NewAssertionSigner(e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg); err != nil {
			return errors.New("previous private_key " + err.Error())
		}
	}
	if e.TLSClientCert != "" {
		cert, err := backend.ParseClientCertificate(e.TLSClientCert, e.TLSClientKey, now())
		if err != nil {
			return err
		}
		if err := backend.UseClientCertificate(ep.HTTP, cert); err != nil {
			return err
		}
		ep.TLSClientCert = true
	}
	if e.Issuer != "" {
		st.discovery = &backend.Discovery{Issuer: e.Issuer, HTTP: ep.HTTP, AllowInsecureHTTP: e.AllowInsecureHTTP, Now: now}
		ep.Discovery = st.discovery
	}
	return nil
}

// wireStandards connects a config state to the backend: the fallback to a
// previous credential is logged and counted, and discovered endpoints are
// held to allowed_hosts.
func (b *idpBackend) wireStandards(st *configState) {
	st.endpoint.OnFallback = func(ev backend.FallbackEvent) {
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
	if st.discovery != nil {
		st.discovery.AllowedHosts = b.allowedHosts
	}
}

// discoverAtWrite reads the issuer's metadata when a config is written, so
// that a wrong issuer fails the write (400 naming the issuer and the URL
// read), and checks that the method left to the server can be chosen.
func (b *idpBackend) discoverAtWrite(ctx context.Context, st *configState) *logical.Response {
	if st.discovery == nil {
		return nil
	}
	md, err := st.discovery.Fetch(ctx)
	if err != nil {
		return fieldError("issuer", "%v", err)
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
