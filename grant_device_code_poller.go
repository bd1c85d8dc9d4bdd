package idptokens

// Polling for pending device logins (RFC 8628 3.4, 3.5). Only the active
// node polls: a goroutine per pending login, started when the login is
// requested, and again after a restart or a leader change by the periodic
// function (within its minute) or by the first creds read of the role. The
// poller waits interval between polls (slow_down adds 5 s, authorization_
// pending just waits) and stops when the login succeeds (the token is
// stored as the role's), is denied, expires, fails, is replaced by a new
// request, or the role is changed or deleted.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// devicePollers tracks the running pollers of this node, one per login
// slot (deviceSlot: a role, or an entity of a per_entity role).
type devicePollers struct {
	mu      sync.Mutex
	running map[string]*devicePoller
	// writeMu serialises writes of device logins (request, poll outcome).
	writeMu sync.Mutex
	// minInterval is the least wait between polls, slowDown what slow_down
	// adds (tests shorten them).
	minInterval, slowDown time.Duration
	// storage is the mount's storage, for pollers outside any request.
	storage logical.Storage
}

type devicePoller struct {
	id     string
	cancel context.CancelFunc
}

// start runs a poller for the slot's login id unless one already runs.
func (p *devicePollers) start(b *idpBackend, role, id string) {
	if p.storage == nil || b.storageReadOnly() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.running[role]; ok {
		if cur.id == id {
			return
		}
		cur.cancel()
	}
	if p.running == nil {
		p.running = map[string]*devicePoller{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.running[role] = &devicePoller{id: id, cancel: cancel}
	go func() {
		b.pollDeviceLogin(ctx, role, id)
		p.mu.Lock()
		if cur, ok := p.running[role]; ok && cur.id == id {
			delete(p.running, role)
		}
		p.mu.Unlock()
		cancel()
	}()
}

// stopSlot ends the slot's poller, if one runs.
func (p *devicePollers) stopSlot(slot string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.running[slot]; ok {
		cur.cancel()
		delete(p.running, slot)
	}
}

// stopRole ends the pollers of every slot of role (it is deleted).
func (p *devicePollers) stopRole(role string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for slot, cur := range p.running {
		if slot == role || strings.HasPrefix(slot, role+"/") {
			cur.cancel()
			delete(p.running, slot)
		}
	}
}

// stopAll ends every poller (the mount is unloaded).
func (p *devicePollers) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for role, cur := range p.running {
		cur.cancel()
		delete(p.running, role)
	}
}

func (p *devicePollers) wait(l *deviceLogin) time.Duration {
	return max(l.Interval, p.minInterval, time.Millisecond)
}

// pollDeviceLogin polls the slot's login until it ends.
func (b *idpBackend) pollDeviceLogin(ctx context.Context, slot, id string) {
	s := b.devices.storage
	for {
		l, err := loadDeviceLogin(ctx, s, slot)
		if err != nil {
			b.Logger().Warn("device login: reading the pending login failed", "slot", slot, "error", err)
		}
		if l == nil || l.ID != id || l.Ended != "" {
			return
		}
		t := time.NewTimer(b.devices.wait(l))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if b.storageReadOnly() || b.pollDeviceOnce(ctx, s, slot, id) {
			return
		}
	}
}

// pollDeviceOnce makes one poll; true means the login ended.
func (b *idpBackend) pollDeviceOnce(ctx context.Context, s logical.Storage, slot, id string) bool {
	// Before the role is read: a drop or delete after this stores nothing.
	began := b.tokens.Epoch()
	l, err := loadDeviceLogin(ctx, s, slot)
	if err != nil || l == nil || l.ID != id || l.Ended != "" {
		return err == nil
	}
	name := l.Role
	role, cfg, resp, err := b.roleAndConfig(ctx, s, name)
	if err != nil {
		b.Logger().Warn("device login: reading the role failed", "role", name, "error", err)
		return false
	}
	if resp != nil && role == nil {
		// The role is gone: so is its login.
		b.Logger().Info("device login stopped: the role was deleted", "role", name)
		b.devices.writeMu.Lock()
		defer b.devices.writeMu.Unlock()
		if cur, _ := loadDeviceLogin(ctx, s, slot); cur != nil && cur.ID == id {
			_ = s.Delete(ctx, deviceLoginPrefix+slot)
		}
		return true
	}
	if resp != nil || role.grant() != backend.GrantDeviceCode || cachedFingerprint(name, role, cfg) != l.Fingerprint || roleVersion(role) != l.RoleVersion ||
		role.PerEntity != (l.Entity != "") {
		b.Logger().Info("device login stopped: the role was changed or deleted", "role", name)
		return b.endDeviceLogin(ctx, s, l, deviceEndRoleChanged, "the role or its config changed")
	}
	if !b.now().Before(l.ExpiresAt) {
		return b.endDeviceLogin(ctx, s, l, deviceEndExpired, "the device code expired before the login was done")
	}
	h := holder{entity: l.Entity, perEntity: role.PerEntity}
	_, err = b.login(ctx, s, name, role, cfg, h, began, func(ctx context.Context) (*backend.Token, error) {
		l.Polls++
		treq := backend.DeviceTokenRequest(l.DeviceCode)
		treq.Params.Set("client_id", cfg.entry.ClientID)
		tok, err := cfg.endpoint.RequestToken(ctx, treq)
		if err != nil {
			return nil, err
		}
		return tok, b.checkLoginSubject(ctx, cfg, role, l.Entity, "", tok)
	})
	var held *backend.HeldError
	var dropped *backend.DroppedError
	switch {
	case errors.As(err, &held):
		// A token the poll would kill is still held: poll once it is not.
		b.Logger().Debug("device login: poll deferred while the shared token is held", "role", name, "until", held.Until)
		return false
	case errors.As(err, &dropped):
		return b.endDeviceLogin(ctx, s, l, deviceEndRoleChanged, "the role was dropped, changed or deleted while the login completed")
	case isSubjectMismatchErr(err):
		m, _ := isSubjectMismatch(err)
		b.revokeDropped(ctx, []toRevoke{{key: tokenKeyOf(name, role, cfg, h), cfg: cfg, tok: &backend.StoredToken{Token: *m.token}}})
		b.metrics.PerEntityLogin(role.Config, name, backend.LoginRefusedSubject)
		return b.endDeviceLogin(ctx, s, l, deviceEndRefusedSubject, err.Error())
	case errors.Is(err, logical.ErrReadOnly):
		return true // another node polls
	case err == nil:
		b.devices.writeMu.Lock()
		defer b.devices.writeMu.Unlock()
		if role.PerEntity {
			b.metrics.PerEntityLogin(role.Config, name, backend.LoginSuccess)
		}
		if cur, _ := loadDeviceLogin(ctx, s, slot); cur != nil && cur.ID == id {
			if err := s.Delete(ctx, deviceLoginPrefix+slot); err != nil {
				b.Logger().Warn("device login: deleting the completed login failed", "role", name, "error", err)
			}
		}
		b.Logger().Info("device login complete", "role", name, "config", role.Config, "polls", l.Polls)
		return true
	}
	switch backend.DeviceErrorCode(err) {
	case backend.DeviceAuthorizationPending:
		b.Logger().Debug("device login pending", "role", name, "polls", l.Polls)
		return !b.updateDeviceLogin(ctx, s, l, nil)
	case backend.DeviceSlowDown:
		b.Logger().Debug("device login: slow_down", "role", name, "polls", l.Polls)
		return !b.updateDeviceLogin(ctx, s, l, func(l *deviceLogin) { l.Interval = max(l.Interval, time.Second) + b.devices.slowDown })
	case backend.DeviceAccessDenied:
		return b.endDeviceLogin(ctx, s, l, deviceEndDenied, err.Error())
	case backend.DeviceExpiredToken:
		return b.endDeviceLogin(ctx, s, l, deviceEndExpired, err.Error())
	}
	var idpErr *backend.IdPError
	if errors.As(err, &idpErr) && !idpErr.Temporary && backend.IsRefusal(err) {
		b.Logger().Warn("device login failed", "role", name, "error", err)
		return b.endDeviceLogin(ctx, s, l, deviceEndFailed, err.Error())
	}
	// Unreachable or failing for now: keep polling until the code expires.
	b.Logger().Warn("device login: poll failed, will retry", "role", name, "error", err)
	return false
}

// updateDeviceLogin stores l (after change) if it is still the role's
// login; false when it was replaced.
func (b *idpBackend) updateDeviceLogin(ctx context.Context, s logical.Storage, l *deviceLogin, change func(*deviceLogin)) bool {
	b.devices.writeMu.Lock()
	defer b.devices.writeMu.Unlock()
	cur, err := loadDeviceLogin(ctx, s, l.slot())
	if err != nil || cur == nil || cur.ID != l.ID {
		return err != nil // a read failure keeps polling
	}
	cur.Polls = l.Polls
	if change != nil {
		change(cur)
	}
	if err := storeDeviceLogin(ctx, s, cur); err != nil {
		b.Logger().Warn("device login: storing the pending login failed", "role", l.Role, "error", err)
	}
	return true
}

// endDeviceLogin records why the login ended (kept for an hour so that
// creds can say so); it always ends the poller.
func (b *idpBackend) endDeviceLogin(ctx context.Context, s logical.Storage, l *deviceLogin, why, reason string) bool {
	b.updateDeviceLogin(ctx, s, l, func(cur *deviceLogin) {
		cur.Ended, cur.EndedAt, cur.Reason, cur.DeviceCode = why, b.now(), backend.Sanitize(reason, 300), ""
	})
	b.Logger().Info("device login ended", "role", l.Role, "why", why)
	return true
}

// resumeDeviceLogins, from the periodic function on the active node,
// starts pollers for pending logins (after a restart or a leader change)
// and deletes ended and expired ones after endedDeviceLoginTTL.
func (b *idpBackend) resumeDeviceLogins(ctx context.Context, s logical.Storage) error {
	if b.storageReadOnly() {
		return nil
	}
	slots, err := logical.CollectKeysWithPrefix(ctx, s, deviceLoginPrefix)
	if err != nil {
		return err
	}
	now := b.now()
	for _, key := range slots {
		slot := strings.TrimPrefix(key, deviceLoginPrefix)
		l, err := loadDeviceLogin(ctx, s, slot)
		if err != nil || l == nil {
			continue
		}
		if (l.Ended != "" && now.Sub(l.EndedAt) > endedDeviceLoginTTL) || now.Sub(l.ExpiresAt) > endedDeviceLoginTTL {
			if err := s.Delete(ctx, key); err != nil {
				return err
			}
			continue
		}
		if l.Ended == "" {
			b.devices.start(b, slot, l.ID)
		}
	}
	return nil
}
