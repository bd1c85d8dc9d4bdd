// <mount>/config/<name>/public-keys and <mount>/config/<name>/rotate-key:
// the keys made in Vault, for IdPs that take an uploaded public key, and a
// rotation started by hand.

package idptokens

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathConfigKeys() []*framework.Path {
	name := map[string]*framework.FieldSchema{"name": {Type: framework.TypeString, Description: "Name of a config with generate_key=true."}}
	return []*framework.Path{
		{
			Pattern:      "config/" + framework.GenericNameRegex("name") + "/public-keys",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "public-keys"},
			Fields:       name,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathPublicKeysRead, Summary: "The public keys the JWKS serves, as JWKs and PEM.", Responses: publicKeysResponses()},
			},
			HelpSynopsis:    "Public keys of a config's keys made in Vault, for an upload to the IdP.",
			HelpDescription: strings.TrimSpace(publicKeysHelp),
		},
		{
			Pattern:      "config/" + framework.GenericNameRegex("name") + "/rotate-key",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "rotate", OperationSuffix: "key"},
			Fields:       name,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathRotateKey), Summary: "Make the next key now: published at once, signing after key_publish_lead.", Responses: rotateKeyResponses()},
			},
			HelpSynopsis:    "Begin a rotation of a config's key made in Vault.",
			HelpDescription: strings.TrimSpace(rotateKeyHelp),
		},
	}
}

func (b *idpBackend) pathPublicKeysRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	st, err := b.config(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return logical.ErrorResponse("no config named %q", name), nil
	}
	if st.endpoint.Keys == nil {
		return fieldError("generate_key", "config %q has no keys made in Vault", name), nil
	}
	now := b.clock()
	keys := []map[string]any{}
	for _, k := range st.endpoint.Keys.Load().PublishedAt(now) {
		pub, err := backend.PublicKeyPEM(k.Public.Key)
		if err != nil {
			return nil, err
		}
		keys = append(keys, map[string]any{
			"kid": k.Public.KeyID, "alg": k.Public.Algorithm, "state": k.StateAt(now),
			"jwk": k.Public.Public(), "public_key_pem": pub,
		})
	}
	return &logical.Response{Data: map[string]any{
		"keys":     keys,
		"jwks_url": "/v1/" + mountPrefix(req.MountPoint) + "jwks/" + name,
	}}, nil
}

func (b *idpBackend) pathRotateKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	e, err := loadConfigEntry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return logical.ErrorResponse("no config named %q", name), nil
	}
	if !e.GenerateKey {
		return fieldError("generate_key", "config %q has no keys made in Vault (write generate_key=true first); config/%s/rotate rotates a pasted key or secret", name, name), nil
	}
	ks, err := b.startRotation(ctx, req.Storage, name, e)
	if refused := (*rotationRefusedError)(nil); errors.As(err, &refused) {
		return logical.ErrorResponse(refused.Error()), nil
	}
	if err != nil || ks == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"keys": keyViews(ks, b.clock())}}, nil
}

const publicKeysHelp = `
The public keys that <mount>/jwks/<name> serves, each as a JWK and as a PEM
public key, with its kid (RFC 7638 thumbprint), alg and state (next, signing,
retiring). For IdPs that want the public key uploaded rather than a JWKS URL:
upload the next key before it signs (its signs_from shows in config/<name>).
Never the private key.
`

const rotateKeyHelp = `
Makes the config's next key now:

  vault write -f <mount>/config/<name>/rotate-key

It is published at once (jwks/<name>), signs key_publish_lead later, and the
current key then stays published key_overlap longer. One rotation at a time.
With key_rotation_period set, the periodic function does the same on its own.
`

func publicKeysResponses() map[int][]framework.Response {
	return ok200("The published public keys.", map[string]*framework.FieldSchema{
		"keys":     {Type: framework.TypeSlice, Description: "kid, alg, state, jwk (the public JWK) and public_key_pem of each published key.", Required: true},
		"jwks_url": respString("The path of the config's JWKS on this Vault (prefix it with Vault's address)."),
	})
}

func rotateKeyResponses() map[int][]framework.Response {
	return ok200("The config's keys after the new one was made.", map[string]*framework.FieldSchema{"keys": keyViewSchema()})
}
