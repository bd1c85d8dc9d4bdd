// Command floorplugin is the benchmark's floor: the least an external
// secrets plugin can do for a read. creds/<role> returns a constant as a
// leased, non-renewable secret with a TTL of one hour, and token/<role> the
// same constant with no lease, through the same SDK framework and
// plugin.ServeMultiplex as the real engine, so the difference between each
// and the engine's read of the same kind is what the engine itself costs.
package main

import (
	"context"
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("floor plugin shutting down", "error", err)
	os.Exit(1)
}

const secretType = "floor_token"

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	var b *framework.Backend
	b = &framework.Backend{
		Help:        "Benchmark floor: a constant leased secret.",
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "creds/" + framework.GenericNameRegex("role"),
			Fields:  map[string]*framework.FieldSchema{"role": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					resp := b.Secret(secretType).Response(map[string]any{
						"access_token": "floor-constant-token-0123456789abcdef",
						"token_type":   "Bearer",
					}, map[string]any{"role": d.Get("role")})
					resp.Secret.TTL = time.Hour
					resp.Secret.MaxTTL = time.Hour
					resp.Secret.Renewable = false
					return resp, nil
				}},
			},
		}, {
			// The unleased floor of idp/token/<role>, after creds as in the engine.
			Pattern: "token/" + framework.GenericNameRegex("role"),
			Fields:  map[string]*framework.FieldSchema{"role": {Type: framework.TypeString}},
			Operations: map[logical.Operation]framework.OperationHandler{
				// The same five fields as idp/token/<role>, values of the same
				// length (the fake IdP's tokens are 50 characters), so that
				// the ratio measures the engine's work, not the answer's size.
				logical.ReadOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
					return &logical.Response{Data: map[string]any{
						"access_token": "oauth2_floor-constant-token-0123456789abcdefghijkl",
						"token_type":   "Bearer",
						"expires_at":   time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
						"expires_in":   int64(3600),
						"scope":        "read",
					}}, nil
				}},
			},
		}},
		Secrets: []*framework.Secret{{
			Type:   secretType,
			Fields: map[string]*framework.FieldSchema{"access_token": {Type: framework.TypeString}},
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
