package idptokens

// A pending device login (RFC 8628) as stored: one per role, under
// devicelogin/<role> (seal-wrapped), replaced by a new device-code request.
// The device code never leaves Vault. grant_device_code_poller.go polls for it.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// endedDeviceLoginTTL is how long an ended login is kept, so that creds
// can say why it ended; the periodic function deletes it after.
const endedDeviceLoginTTL = time.Hour

// Why a device login ended without a token.
const (
	deviceEndDenied      = "access_denied"
	deviceEndExpired     = "expired_token"
	deviceEndFailed      = "failed"
	deviceEndRoleChanged = "role_changed"
	// deviceEndRefusedSubject: the login was done by someone else than the
	// entity that began it (bound_subject); nothing was stored.
	deviceEndRefusedSubject = "refused_subject"
)

type deviceLogin struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// Entity (per_entity roles) began the login; the token is its own.
	Entity                  string        `json:"entity,omitempty"`
	Config                  string        `json:"config"`
	Fingerprint             string        `json:"fingerprint"`
	RoleVersion             string        `json:"role_version"`
	DeviceCode              string        `json:"device_code"`
	UserCode                string        `json:"user_code"`
	VerificationURI         string        `json:"verification_uri"`
	VerificationURIComplete string        `json:"verification_uri_complete,omitempty"`
	Created                 time.Time     `json:"created"`
	ExpiresAt               time.Time     `json:"expires_at"`
	Interval                time.Duration `json:"interval"`
	Polls                   int           `json:"polls"`
	// Ended is set when the login ended without a token; Reason quotes the
	// IdP (sanitised and redacted).
	Ended   string    `json:"ended,omitempty"`
	EndedAt time.Time `json:"ended_at,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// roleVersion identifies the role as written: any change ends its login.
func roleVersion(r *roleEntry) string {
	raw, _ := json.Marshal(r)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

func newDeviceLoginID() string {
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// deviceSlot names whose pending device login of a role it is: the role's
// own ("<role>"), or an entity's of a per_entity role ("<role>/<entity>").
// Logins are stored under deviceLoginPrefix+slot, one per slot.
func deviceSlot(role, entity string) string {
	if entity == "" {
		return role
	}
	return role + "/" + entity
}

func (l *deviceLogin) slot() string { return deviceSlot(l.Role, l.Entity) }

func loadDeviceLogin(ctx context.Context, s logical.Storage, slot string) (*deviceLogin, error) {
	return getJSON[deviceLogin](ctx, s, deviceLoginPrefix+slot)
}

func storeDeviceLogin(ctx context.Context, s logical.Storage, l *deviceLogin) error {
	return putJSON(ctx, s, deviceLoginPrefix+l.slot(), l)
}

// deviceLoginNeeded is creds' answer for a device_code role without a
// usable token: the pending login (user code and URL), why the last one
// ended, or how to start one. A pending login without a poller on this node
// (after a restart or a leader change) gets one.
func (b *idpBackend) deviceLoginNeeded(ctx context.Context, req *logical.Request, name string, h holder) error {
	slot := deviceSlot(name, h.entity)
	l, err := loadDeviceLogin(ctx, req.Storage, slot)
	if err != nil {
		return err
	}
	start := fmt.Sprintf("start one with 'vault write -f %sdevice-code/%s'", mountPrefix(req.MountPoint), name)
	whose := "it holds"
	if h.perEntity {
		whose = "it gives each entity its own token, and holds for yours"
	}
	switch {
	case l == nil:
		return &grantUserError{fmt.Sprintf("role %q needs a device login: %s no token that is still valid or can be refreshed; %s", name, whose, start)}
	case l.Ended != "":
		return &grantUserError{fmt.Sprintf("role %q: the last device login ended (%s%s); %s", name, l.Ended, quoteReason(l.Reason), start)}
	case !b.now().Before(l.ExpiresAt):
		return &grantUserError{fmt.Sprintf("role %q: the device login expired at %s; %s", name, l.ExpiresAt.UTC().Format(time.RFC3339), start)}
	}
	b.devices.start(b, slot, l.ID)
	where := l.VerificationURI
	if l.VerificationURIComplete != "" {
		where = l.VerificationURIComplete
	}
	return &grantUserError{fmt.Sprintf("role %q waits for a device login: open %s and enter the code %s before %s; Vault polls the IdP and serves the token once the login is done",
		name, where, l.UserCode, l.ExpiresAt.UTC().Format(time.RFC3339))}
}

func quoteReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
