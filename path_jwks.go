// <mount>/jwks/<config>: the public keys of a config's keys made in Vault,
// as a JSON Web Key Set (RFC 7517), for the IdP to fetch (the client's
// jwks_uri). Unauthenticated, like the callback; a read, so any node
// answers it from memory.

package idptokens

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func (b *idpBackend) pathJWKS() []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "jwks/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "jwks"},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of a config with generate_key=true."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathJWKSRead, Summary: "The config's public keys as a JWKS (unauthenticated: the IdP's jwks_uri).", Responses: jwksResponses(),
				},
			},
			HelpSynopsis:    "Public keys of a config's keys made in Vault, for the IdP.",
			HelpDescription: strings.TrimSpace(jwksHelp),
		},
	}
}

func (b *idpBackend) pathJWKSRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	st, err := b.config(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	// One answer for a missing config and one without generated keys: the
	// path is public, and says nothing of configs that publish no keys.
	if st == nil || st.endpoint.Keys == nil {
		body, _ := json.Marshal(map[string][]string{"errors": {fmt.Sprintf("generate_key: no config named %q has keys made in Vault", name)}})
		return rawJSON(http.StatusNotFound, body, "no-store"), nil
	}
	body, err := st.endpoint.Keys.Load().JWKSAt(b.clock())
	if err != nil {
		return nil, err
	}
	return rawJSON(http.StatusOK, body, fmt.Sprintf("public, max-age=%d", int64(jwksMaxAge(st.entry).Seconds()))), nil
}

// rawJSON is a JSON body answered as it is, with its Cache-Control.
func rawJSON(status int, body []byte, cacheControl string) *logical.Response {
	return &logical.Response{Data: map[string]any{
		logical.HTTPStatusCode:         status,
		logical.HTTPContentType:        "application/json",
		logical.HTTPRawBody:            body,
		logical.HTTPCacheControlHeader: cacheControl,
	}}
}

const jwksHelp = `
Answers a JSON Web Key Set (RFC 7517) with the public half of every key of
the config that signs or will sign, and of keys that stopped signing less
than key_overlap ago. Register this URL at the IdP as the client's jwks_uri:

  https://<vault>/v1/<mount>/jwks/<config>

The path is unauthenticated (IdPs fetch it without a Vault token) and holds
public keys only. Cache-Control max-age is a fifth of key_publish_lead (at
most 5 minutes), so an IdP that honours it has a new key before it signs.
`

// jwksResponses: jwks/<name>, a raw JSON body.
func jwksResponses() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusOK: {{Description: "The JSON Web Key Set.", MediaType: "application/json", Fields: map[string]*framework.FieldSchema{
			"keys": {Type: framework.TypeSlice, Description: "Public JWKs (kty, kid, alg, use=sig and the public members).", Required: true},
		}}},
		http.StatusNotFound: {{Description: "No config of that name has keys made in Vault.", MediaType: "application/json"}},
	}
}
