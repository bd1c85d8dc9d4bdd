package idptokens

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
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

func (k storageKV) List(ctx context.Context, prefix string) ([]string, error) {
	return k.s.List(ctx, prefix)
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

// The storage layout: every key and prefix the engine writes. A prefix
// ends with "/"; the token store writes below backend.TokenPrefix itself.
const (
	configPrefix        = "config/"
	rolePrefix          = "roles/"
	clientIndexPrefix   = "clientindex/"
	clientIndexBuiltKey = "clientindex-built"
	authStatePrefix     = "authstate/"
	pendingPrefix       = "authpending/"
	deviceLoginPrefix   = "devicelogin/"
	settingsKey         = "settings"
	keysPrefix          = "keys/"
	tokenPrefix         = backend.TokenPrefix
)

// storageArea is one key or prefix of the layout, what it holds, and
// whether Vault seal-wraps it (on Vault Enterprise, with a seal that
// supports it; other editions ignore the list).
type storageArea struct {
	key      string
	holds    string
	sealWrap bool
}

var storageLayout = []storageArea{
	{configPrefix, "configs, with client secrets, operator passwords and private keys", true},
	{rolePrefix, "roles", false},
	{clientIndexPrefix, "per client of an IdP, the names of the configs that hold it", true},
	{clientIndexBuiltKey, "the version of the client index, once it holds every config", false},
	{authStatePrefix, "pending code-flow logins, under a SHA-256 of their state, with their PKCE verifiers", true},
	{pendingPrefix, "per role, the keys of its pending code-flow logins", true},
	{deviceLoginPrefix, "pending device logins, with their device codes", true},
	{settingsKey, "the mount's settings (allowed_hosts)", false},
	{keysPrefix, "per config, the private keys made in Vault (generate_key) and their timelines", true},
	{tokenPrefix, "cached tokens, with their refresh tokens", true},
}

// sealWrapStorage is the layout's seal-wrapped keys and prefixes, for the
// backend's PathsSpecial.
func sealWrapStorage() []string {
	var out []string
	for _, a := range storageLayout {
		if a.sealWrap {
			out = append(out, a.key)
		}
	}
	return out
}

// errUnreadable is wrapped by getJSON's error for an entry that does not
// decode (the callers that may drop such an entry test for it).
var errUnreadable = errors.New("unreadable")

// getJSON decodes the entry at key into a new T; nil when there is none.
func getJSON[T any](ctx context.Context, s logical.Storage, key string) (*T, error) {
	raw, err := s.Get(ctx, key)
	if err != nil || raw == nil {
		return nil, err
	}
	v := new(T)
	if err := raw.DecodeJSON(v); err != nil {
		return nil, fmt.Errorf("the stored %s is %w: %w", key, errUnreadable, err)
	}
	return v, nil
}

// putJSON stores v at key as JSON.
func putJSON(ctx context.Context, s logical.Storage, key string, v any) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}
