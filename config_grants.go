// Config fields of the grants of issue 11: the device authorization
// endpoint (RFC 8628) and the Google service-account key file (jwt_bearer).

package idptokens

import (
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// grantsConfigEntry is the part of a stored config added by issue 11.
type grantsConfigEntry struct {
	DeviceAuthorizationURL string `json:"device_authorization_url,omitempty"`
}

func grantsConfigFields(secret func(string) *framework.FieldSchema) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"device_authorization_url": {Type: framework.TypeString, Description: "RFC 8628 device authorization endpoint, for the device_code grant. Default: discovered (device_authorization_endpoint) with issuer."},
		"credentials":              secret("Google service-account JSON key file (provider google-service-account): sets client_id (client_email), private_key, private_key_id and, unless token_url is given, token_url (token_uri). Give it as credentials=@key.json."),
	}
}

// applyGrantsConfigFields copies the fields of issue 11 sent into e.
func applyGrantsConfigFields(e *configEntry, d *framework.FieldData) *logical.Response {
	if v, ok, resp := getString(d, "device_authorization_url"); resp != nil {
		return resp
	} else if ok {
		e.DeviceAuthorizationURL = strings.TrimSpace(v)
	}
	return applyServiceAccountKey(e, d)
}

// validateGrantsConfig checks device_authorization_url like the other
// endpoints (https off loopback unless allow_insecure_http).
func validateGrantsConfig(e *configEntry) *logical.Response {
	if e.DeviceAuthorizationURL == "" {
		return nil
	}
	if resp := checkText("device_authorization_url", e.DeviceAuthorizationURL, maxFieldLen); resp != nil {
		return resp
	}
	if err := backend.CheckEndpointURL(e.DeviceAuthorizationURL, e.AllowInsecureHTTP); err != nil {
		return fieldError("device_authorization_url", "%v", err)
	}
	return nil
}

// applyServiceAccountKey takes client_id, private_key, private_key_id and
// token_url from a Google service-account key file (the write-only
// credentials field). The file itself is not stored: what it gives is, the
// key write-only like any private_key.
func applyServiceAccountKey(e *configEntry, d *framework.FieldData) *logical.Response {
	raw, ok, resp := getString(d, "credentials")
	if resp != nil || !ok {
		return resp
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
