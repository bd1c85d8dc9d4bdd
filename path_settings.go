package idptokens

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// settingsKey is the storage key of the mount's settings.
const settingsKey = "settings"

// settingsEntry is the mount-wide settings, as stored.
type settingsEntry struct {
	// AllowedHosts limits the IdP hosts configs may name (normalized by
	// backend.NormalizeHostPatterns); empty allows any host.
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
}

// settingsState keeps the settings in memory: the guarded HTTP clients of
// every config ask for them on each request.
type settingsState struct {
	current atomic.Pointer[settingsEntry] // nil until first loaded
	stale   atomic.Bool                   // set by Invalidate: reload on next use
	mu      sync.Mutex                    // one load at a time
}

func (b *idpBackend) pathSettings() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "settings",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "idp", OperationSuffix: "settings"},
		Fields: map[string]*framework.FieldSchema{
			"allowed_hosts": {
				Type: framework.TypeCommaStringSlice,
				Description: "Hosts the mount's configs may send credentials to: host names, IP addresses or *.suffix patterns " +
					"(any depth below suffix, not suffix itself). Empty allows any host.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   &framework.PathOperation{Callback: b.pathSettingsRead, Summary: "Read the mount's settings."},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSettingsWrite, Summary: "Update the mount's settings."},
		},
		HelpSynopsis:    "Mount-wide settings: which IdP hosts configs may name.",
		HelpDescription: strings.TrimSpace(settingsHelp),
	}}
}

// loadSettings returns the settings, from memory unless never loaded or
// invalidated since.
func (b *idpBackend) loadSettings(ctx context.Context, s logical.Storage) (*settingsEntry, error) {
	if cur := b.settings.current.Load(); cur != nil && !b.settings.stale.Load() {
		return cur, nil
	}
	b.settings.mu.Lock()
	defer b.settings.mu.Unlock()
	if cur := b.settings.current.Load(); cur != nil && !b.settings.stale.Load() {
		return cur, nil
	}
	// Cleared before the read: an invalidation arriving during it sets it again.
	b.settings.stale.Store(false)
	raw, err := s.Get(ctx, settingsKey)
	if err != nil {
		b.settings.stale.Store(true)
		return nil, err
	}
	e := &settingsEntry{}
	if raw != nil {
		if err := raw.DecodeJSON(e); err != nil {
			b.settings.stale.Store(true)
			return nil, fmt.Errorf("stored settings are unreadable: %w", err)
		}
	}
	b.settings.current.Store(e)
	return e, nil
}

// allowedHosts is what the guarded HTTP clients ask before every request.
// Settings not yet loaded refuse the request: every path that hands a config
// to the IdP side loads them first, so this only guards against a mistake.
func (b *idpBackend) allowedHosts() ([]string, error) {
	cur := b.settings.current.Load()
	if cur == nil {
		return nil, errors.New("the mount's settings are not loaded")
	}
	return cur.AllowedHosts, nil
}

// guardHosts makes a config's HTTP client refuse hosts outside allowed_hosts
// at request time too (the settings may have changed after the config was
// written).
func (b *idpBackend) guardHosts(st *configState) {
	client := st.endpoint.HTTP
	client.Transport = backend.GuardTransport(client.Transport, b.allowedHosts)
	b.wireStandards(st)
}

// checkConfigHosts refuses a config whose endpoints lie outside allowed_hosts.
func (b *idpBackend) checkConfigHosts(ctx context.Context, s logical.Storage, e *configEntry) (*logical.Response, error) {
	settings, err := b.loadSettings(ctx, s)
	if err != nil {
		return nil, err
	}
	if field, host := hostOutside(e, settings.AllowedHosts); field != "" {
		return fieldError(field, "host %q is not in the mount's allowed_hosts (see the settings path)", host), nil
	}
	return nil, nil
}

// hostOutside returns the first endpoint field whose host is not allowed.
func hostOutside(e *configEntry, allowed []string) (field, host string) {
	if len(allowed) == 0 {
		return "", ""
	}
	for _, u := range []struct{ field, value string }{
		{"token_url", e.TokenURL}, {"auth_url", e.AuthURL}, {"revocation_url", e.RevocationURL}, {"issuer", e.Issuer},
		{"device_authorization_url", e.DeviceAuthorizationURL},
	} {
		if u.value == "" {
			continue
		}
		if h := backend.URLHost(u.value); !backend.HostAllowed(h, allowed) {
			return u.field, h
		}
	}
	return "", ""
}

func (b *idpBackend) pathSettingsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	settings, err := b.loadSettings(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: settings.data()}, nil
}

func (e *settingsEntry) data() map[string]any {
	return map[string]any{"allowed_hosts": nonNil(e.AllowedHosts)}
}

func (b *idpBackend) pathSettingsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(d); resp != nil {
		return resp, nil
	}
	hosts, sent, resp := getStrings(d, "allowed_hosts")
	if resp != nil {
		return resp, nil
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
	raw, err := logical.StorageEntryJSON(settingsKey, &e)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, raw); err != nil {
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
