package idptokens

import (
	"context"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// storageKV lets the backend package's token store write through Vault's
// storage without importing the SDK.
type storageKV struct{ s logical.Storage }

func (k storageKV) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := k.s.Get(ctx, key)
	if err != nil || e == nil {
		return nil, err
	}
	return e.Value, nil
}

func (k storageKV) Put(ctx context.Context, key string, value []byte) error {
	return k.s.Put(ctx, &logical.StorageEntry{Key: key, Value: value})
}

func (k storageKV) Delete(ctx context.Context, key string) error {
	return k.s.Delete(ctx, key)
}

// listUnder answers a LIST of the entries stored under prefix.
func listUnder(prefix string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
		names, err := req.Storage.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		return logical.ListResponse(names), nil
	}
}

// mountPrefix is the mount path as it goes in front of a path in a message
// ("idp/", "team-a/tokens/"): hints name the mount the request came in on.
func mountPrefix(mount string) string {
	if mount == "" {
		return "idp/"
	}
	return strings.TrimSuffix(mount, "/") + "/"
}

// Storage prefixes.
const (
	configPrefix = "config/"
	rolePrefix   = "roles/"
	// keysPrefix holds the keys made in Vault of each config (config_keys.go).
	keysPrefix = "keys/"
)
