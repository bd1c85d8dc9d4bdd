// What a config write does to its keys made in Vault: the checks of the
// key fields, the moves a switch to generated keys implies, the first key
// and the forgetting of the keys (config_keys.go holds the keys themselves).

package idptokens

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// keyFieldNames are the config fields of generated keys.
var keyFieldNames = []string{"key_rotation_period", "key_publish_lead", "key_overlap"}

// adoptKeyFields checks the generated-key fields of a config write and
// makes the moves a switch to generated keys implies, before the config's
// other checks: a pasted private_key held becomes the previous key, and a
// client secret becomes the previous credential when client_auth moves to
// private_key_jwt. It answers the write's warnings, or a 400 naming the
// field. It stores nothing.
func adoptKeyFields(old, e *configEntry, d *framework.FieldData) ([]string, *logical.Response) {
	_, sentKey := d.Raw["private_key"]
	_, sentFile := d.Raw["credentials"]
	_, sentAlg := d.Raw["signing_alg"]
	if !e.GenerateKey {
		for _, f := range keyFieldNames {
			if _, sent := d.Raw[f]; sent && *lookupConfigField(f).dur(e) != 0 {
				return nil, fieldError(f, "is for keys made in Vault: set generate_key=true")
			}
		}
		e.KeyRotationPeriod, e.KeyPublishLead, e.KeyOverlap = 0, 0, 0
		return nil, nil
	}
	if e.PrivateKey != "" && (sentKey || sentFile) {
		return nil, fieldError("generate_key", "a key made in Vault and a pasted private_key (or credentials file) do not go together: write one or the other")
	}
	if _, sent := d.Raw["private_key_id"]; sent && e.PrivateKeyID != "" {
		return nil, fieldError("private_key_id", "is the kid of a pasted private_key; a generated key's kid is its RFC 7638 thumbprint")
	}
	newly := old == nil || !old.GenerateKey
	if newly && e.PrivateKey != "" {
		// A pasted key held: it becomes the previous key, tried once when
		// the IdP refuses the generated one and published beside it.
		e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = e.PrivateKey, e.PrivateKeyID, e.SigningAlg
		e.PrivateKey, e.PrivateKeyID = "", ""
		if !sentAlg {
			e.SigningAlg = ""
		}
	}
	if resp := checkKeyFields(e); resp != nil {
		return nil, resp
	}
	var warnings []string
	if old != nil && (old.ClientAuth == string(backend.ClientAuthBasic) || old.ClientAuth == string(backend.ClientAuthPost)) &&
		e.ClientAuth == string(backend.ClientAuthPrivateKeyJWT) && e.ClientSecret != "" {
		if _, sent := d.Raw["client_secret"]; !sent {
			e.PreviousClientSecret, e.PreviousClientAuth, e.ClientSecret = e.ClientSecret, old.ClientAuth, ""
			warnings = append(warnings, fmt.Sprintf("the client secret is kept as the previous credential: when the IdP refuses the assertion (invalid_client) it is tried once with client_auth=%s, "+
				"so the IdP's client may be switched to private_key_jwt before or after this write; once it is, forget the secret with rotate clear_previous=true", old.ClientAuth))
		}
	}
	if old != nil && old.ClientAuth == "" && e.ClientAuth == string(backend.ClientAuthPrivateKeyJWT) && e.ClientSecret != "" {
		// auto left the secret's method to the server's metadata: there is
		// no former method to try it with.
		warnings = append(warnings, "client_auth was auto, so the client secret is not kept as a previous credential to fall back on: "+
			"for a move without a gap, write client_auth=basic or post (the method the IdP uses now) first, then private_key_jwt")
	}
	if !newly && keyAlg(old) != keyAlg(e) {
		warnings = append(warnings, fmt.Sprintf("the keys made so far stay %s; the next rotation makes a %s key (rotate-key starts one now)", keyAlg(old), keyAlg(e)))
	}
	return warnings, nil
}

// checkKeyFields checks signing_alg and the key durations of a config with
// generate_key.
func checkKeyFields(e *configEntry) *logical.Response {
	alg := keyAlg(e)
	known := false
	for _, a := range backend.GeneratedKeyAlgs {
		known = known || a == alg
	}
	if !known {
		return fieldError("signing_alg", "must be one of %s for a generated key, not %q", strings.Join(backend.GeneratedKeyAlgs, ", "), backend.Sanitize(alg, 20))
	}
	lead, overlap, period := keyPublishLead(e), keyOverlap(e), e.KeyRotationPeriod
	switch {
	case lead < minKeyPublishLead || lead > maxKeyDuration:
		return fieldError("key_publish_lead", "must be between %s and %s: IdPs may keep a fetched JWKS longer than its max-age (oidc-provider keeps it at least 60s)",
			minKeyPublishLead, maxKeyDuration)
	case overlap < minKeyOverlap || overlap > maxKeyDuration:
		return fieldError("key_overlap", "must be between %s and %s (a client assertion lives %s)", minKeyOverlap, maxKeyDuration, backend.AssertionLifetime)
	case period > maxKeyDuration:
		return fieldError("key_rotation_period", "must be at most %s", maxKeyDuration)
	case period != 0 && lead > period:
		return fieldError("key_publish_lead", "%s is longer than key_rotation_period %s: a new key is published that long before it signs, within one rotation period", lead, period)
	case period != 0 && overlap > period:
		return fieldError("key_overlap", "%s is longer than key_rotation_period %s: a key leaves the JWKS within a period of stopping to sign, so that at most three are published", overlap, period)
	}
	return nil
}

// storeFirstKey makes and stores the first key of a config that turns
// generate_key on, before the config that names it is stored: it signs at
// once, as an IdP just given the JWKS URL fetches it for the first
// assertion (one that still holds a former JWKS of the name refuses it
// until that expires: docs/no-client-secret.md says to wait a lead).
func (b *idpBackend) storeFirstKey(ctx context.Context, s logical.Storage, name string, old, e *configEntry) error {
	if !e.GenerateKey || (old != nil && old.GenerateKey) {
		return nil
	}
	now := b.clock()
	k, err := newStoredKey(keyAlg(e), now, now)
	if err != nil {
		return err
	}
	if err := b.storeKeySet(ctx, s, name, &keySetEntry{Keys: []storedKey{k}}); err != nil {
		return err
	}
	b.Logger().Info("signing key generated", "config", name, "kid", k.KID, "alg", k.Alg)
	return nil
}

// dropKeysAfter deletes the keys of a config that turned generate_key off,
// once the config without it is stored.
func (b *idpBackend) dropKeysAfter(ctx context.Context, s logical.Storage, name string, old, e *configEntry) error {
	if old == nil || !old.GenerateKey || e.GenerateKey {
		return nil
	}
	return s.Delete(ctx, keysPrefix+name)
}

// withWarnings adds warnings to a write's answer.
func withWarnings(resp *logical.Response, warnings []string) *logical.Response {
	if len(warnings) == 0 {
		return resp
	}
	if resp == nil {
		resp = &logical.Response{}
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp
}
