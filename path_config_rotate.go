// idp/config/<name>/rotate: replace the client secret or key, keeping the
// previous one as a fallback, without downtime.

package idptokens

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathConfigRotatePaths() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "config/" + framework.GenericNameRegex("name") + "/rotate",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "rotate", OperationSuffix: "config"},
			Fields:       rotateFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathConfigRotate), Summary: "Rotate the client secret or key, keeping the previous one as a fallback.", Responses: rotateResponses()},
			},
			HelpSynopsis:    "Rotate a config's client secret or private key without downtime.",
			HelpDescription: strings.TrimSpace(rotateHelp),
		},
	}
}

// rotatedFields are the config fields a rotation replaces, and what it does
// with each; their types come from the config field table.
var rotatedFields = map[string]string{
	"client_secret":  "The new client secret; the current one becomes the previous one.",
	"private_key":    "The new PEM private key for private_key_jwt; the current one becomes the previous one.",
	"private_key_id": "kid of the new private_key.",
	"signing_alg":    "JWS algorithm of the new private_key (default from the key).",
}

func rotateFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"name":           {Type: framework.TypeString, Description: "Name of the connection."},
		"clear_previous": {Type: framework.TypeBool, Description: "Forget the previous secret and key (once the IdP no longer accepts them)."},
	}
	for name, desc := range rotatedFields {
		s := lookupConfigField(name).schema()
		s.Description = desc
		fields[name] = s
	}
	return fields
}

func (b *idpBackend) pathConfigRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	var secret, key, kid, alg string
	var clear bool
	r := fieldReader{d: d}
	hasSecret := r.text("client_secret", &secret)
	hasKey := r.text("private_key", &key)
	r.text("private_key_id", &kid)
	r.text("signing_alg", &alg)
	r.flag("clear_previous", &clear)
	if r.err != nil {
		return r.err, nil
	}
	if !hasSecret && !hasKey && !clear {
		return logical.ErrorResponse("give client_secret or private_key to rotate, or clear_previous=true"), nil
	}
	if (kid != "" || alg != "") && !hasKey {
		return fieldError("private_key_id", "private_key_id and signing_alg go with a new private_key"), nil
	}

	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	old, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return logical.ErrorResponse("no config named %q", name), nil
	}
	if hasKey && old.GenerateKey {
		return fieldError("private_key", "config %q's keys are made in Vault (generate_key): rotate them with vault write -f %sconfig/%s/rotate-key", name, mountPrefix(req.MountPoint), name), nil
	}
	e := *old
	if hasSecret {
		switch {
		case secret == "":
			return fieldError("client_secret", "must not be empty"), nil
		case secret == e.ClientSecret:
			return fieldError("client_secret", "is the current one already"), nil
		}
		e.PreviousClientSecret, e.ClientSecret = e.ClientSecret, secret
	}
	if hasKey {
		switch {
		case key == "":
			return fieldError("private_key", "must not be empty"), nil
		case key == e.PrivateKey:
			return fieldError("private_key", "is the current one already"), nil
		}
		e.PreviousPrivateKey, e.PreviousPrivateKeyID, e.PreviousSigningAlg = e.PrivateKey, e.PrivateKeyID, e.SigningAlg
		e.PrivateKey, e.PrivateKeyID, e.SigningAlg = key, kid, alg
	}
	if clear {
		clearPrevious(&e)
	}
	provider, err := backend.LookupProvider(e.Provider)
	if err != nil {
		return fieldError("provider", "%v", err), nil
	}
	if resp := validateConfig(&e, provider); resp != nil {
		return resp, nil
	}
	// The generation stays: tokens minted with the former secret are still
	// the same client's, and stay valid.
	st, err := b.newConfigState(name, &e)
	if err != nil {
		return logical.ErrorResponse("%v", err), nil
	}
	if prev, ok := b.configs.Get(name); ok && prev.discovery != nil && st.discovery != nil {
		st.discovery.Seed(prev.discovery)
	}
	if err := b.storeConfig(ctx, req.Storage, st); err != nil {
		return nil, err
	}
	b.Logger().Info("client credentials rotated", "config", name, "client_secret", hasSecret, "private_key", hasKey, "previous_cleared", clear)
	return &logical.Response{Data: map[string]any{
		"client_secret_set":          e.ClientSecret != "",
		"previous_client_secret_set": e.PreviousClientSecret != "",
		"private_key_set":            e.PrivateKey != "",
		"private_key_id":             e.PrivateKeyID,
		"previous_private_key_set":   e.PreviousPrivateKey != "",
	}}, nil
}

const rotateHelp = `
Rotates the client secret (or private_key_jwt key) without downtime:

  vault write idp/config/<name>/rotate client_secret=<new>
  vault write idp/config/<name>/rotate private_key=@new.pem private_key_id=<kid>

The current value becomes the previous one. When the IdP refuses the current
one with invalid_client, the previous one is tried once (logged and counted
in secret_fallbacks_total), so the IdP may be updated before or after Vault.
Once the IdP accepts only the new one:

  vault write idp/config/<name>/rotate clear_previous=true

Cached tokens stay valid: the config's generation does not change.
`

// rotateResponses: config/<name>/rotate.
func rotateResponses() map[int][]framework.Response {
	return ok200("Which credentials the config now holds.", map[string]*framework.FieldSchema{
		"client_secret_set":          respBool("Whether a client_secret is held."),
		"previous_client_secret_set": respBool("Whether a previous client secret is held."),
		"private_key_set":            respBool("Whether a private_key is held."),
		"private_key_id":             respString("kid of the current private_key."),
		"previous_private_key_set":   respBool("Whether a previous private key is held."),
	})
}
