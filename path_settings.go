package idptokens

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func (b *idpBackend) pathSettings() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "settings",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "settings"},
		Fields: map[string]*framework.FieldSchema{
			"allowed_hosts": {
				Type: framework.TypeCommaStringSlice,
				Description: "Hosts the mount's configs may send credentials to: host names, IP addresses or *.suffix patterns " +
					"(any depth below suffix, not suffix itself). Empty allows any host.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   &framework.PathOperation{Callback: b.pathSettingsRead, Summary: "Read the mount's settings.", Responses: settingsResponses()},
			logical.UpdateOperation: &framework.PathOperation{Callback: strict(b.pathSettingsWrite), Summary: "Update the mount's settings.", Responses: settingsResponses()},
		},
		HelpSynopsis:    "Mount-wide settings: which IdP hosts configs may name.",
		HelpDescription: strings.TrimSpace(settingsHelp),
	}}
}

func (b *idpBackend) pathSettingsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	settings, err := b.loadSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: settings.data()}, nil
}

func (b *idpBackend) pathSettingsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	var hosts []string
	r := fieldReader{d: d}
	sent := r.list("allowed_hosts", &hosts)
	if r.err != nil {
		return r.err, nil
	}
	b.writeLock.Lock()
	defer b.writeLock.Unlock()
	old, err := b.loadSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	e := *old
	if sent {
		if e.AllowedHosts, err = backend.NormalizeHostPatterns(hosts); err != nil {
			return fieldError("allowed_hosts", "%v", err), nil
		}
	}
	if err := putJSON(ctx, req.Storage, settingsKey, &e); err != nil {
		return nil, err
	}
	b.settings.current.Store(&e)
	out := &logical.Response{Data: e.data()}
	// Configs written before are not changed, but their requests to hosts
	// now outside the list will be refused: say so.
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		c, err := loadConfigEntry(ctx, req.Storage, name)
		if err != nil || c == nil {
			continue
		}
		if field, host := hostOutside(c, e.AllowedHosts); field != "" {
			out.AddWarning(fmt.Sprintf("config %q: the host %q of its %s is not allowed; its requests will be refused until the config or allowed_hosts change", name, host, field))
		}
	}
	return out, nil
}

const settingsHelp = `
Settings of the whole mount.

allowed_hosts limits where configs may send client secrets and passwords: a
config write naming a token_url, auth_url or revocation_url on another host is
refused, and every request to the IdP is checked again, so narrowing the list
stops requests of configs written before (a warning names them). Entries are
host names, IP addresses, or *.suffix for any name below suffix (not suffix
itself); ports and schemes are not part of an entry. Empty allows any host.
Tokens already cached are still served until they expire.
`

// settingsResponses: settings read and update.
func settingsResponses() map[int][]framework.Response {
	return ok200("The mount's settings.", map[string]*framework.FieldSchema{
		"allowed_hosts": respList("Hosts configs may name; empty allows any."),
	})
}
