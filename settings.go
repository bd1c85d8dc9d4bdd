package idptokens

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/logical"
)

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
	e, err := getJSON[settingsEntry](ctx, s, settingsKey)
	if err != nil {
		b.settings.stale.Store(true)
		return nil, err
	}
	if e == nil {
		e = &settingsEntry{}
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

func (e *settingsEntry) data() map[string]any {
	return map[string]any{"allowed_hosts": nonNil(e.AllowedHosts)}
}
