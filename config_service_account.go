// The Google service-account key file (provider google-service-account,
// jwt_bearer): a write-only config field that is not stored as such.

package idptokens

import (
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// applyServiceAccountKey takes client_id, private_key, private_key_id and
// token_url from a Google service-account key file (the write-only
// credentials field). The file itself is not stored: what it gives is, the
// key write-only like any private_key.
func applyServiceAccountKey(e *configEntry, d *framework.FieldData) *logical.Response {
	var raw string
	r := fieldReader{d: d}
	if !r.text("credentials", &raw) {
		return r.err
	}
	if e.Provider != backend.ProviderGoogleServiceAccount {
		return fieldError("credentials", "is a Google service-account key file, for provider %s", backend.ProviderGoogleServiceAccount)
	}
	if len(raw) > maxKeyPEMLen+maxFieldLen {
		return fieldError("credentials", "longer than %d bytes", maxKeyPEMLen+maxFieldLen)
	}
	key, err := backend.ParseServiceAccountKey(raw)
	if err != nil {
		return fieldError("credentials", "%v", err)
	}
	e.ClientID, e.PrivateKey, e.PrivateKeyID, e.SigningAlg = key.ClientEmail, key.PrivateKey, key.PrivateKeyID, ""
	if _, sent := d.Raw["token_url"]; !sent && key.TokenURI != "" {
		e.TokenURL = key.TokenURI
	}
	// The key was written in this request: moving token_url with a new key
	// file must not ask for private_key again.
	d.Raw["private_key"] = key.PrivateKey
	return nil
}
