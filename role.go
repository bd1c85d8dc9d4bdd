package idptokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// roleEntry names what may be asked of one config.
type roleEntry struct {
	Config      string            `json:"config"`
	GrantType   string            `json:"grant_type"`
	Scopes      []string          `json:"scopes,omitempty"`
	ExtraParams map[string]string `json:"extra_params,omitempty"`
	TTL         time.Duration     `json:"ttl,omitempty"`
	MaxTTL      time.Duration     `json:"max_ttl,omitempty"`
	MinTTL      time.Duration     `json:"min_ttl,omitempty"`
	// Prompt is the OIDC prompt of the role's login URL (authorization
	// code): prompt=login makes the IdP ask the person to log in even when
	// their browser holds an SSO session.
	Prompt []string `json:"prompt,omitempty"`
	// Fields of the jwt_bearer and token_exchange grants (role_fields.go).
	roleGrantFields
	// RenewableLeases makes creds leases renewable (secret_access_token.go), for
	// Vault Proxy's cache; never on a single-active config.
	RenewableLeases bool `json:"renewable_leases,omitempty"`
	// PerEntity (login grants): each Vault entity logs in for, and reads,
	// its own token. BoundSubject, a template, is what the login's ID token
	// claim BoundSubjectClaim must be for the entity that began it.
	PerEntity         bool   `json:"per_entity,omitempty"`
	BoundSubject      string `json:"bound_subject,omitempty"`
	BoundSubjectClaim string `json:"bound_subject_claim,omitempty"`
	// LoginIdleTTL (per_entity): a person's token with a refresh token is
	// forgotten after this long without a read.
	LoginIdleTTL time.Duration `json:"login_idle_ttl,omitempty"`
}

// Bounds of a per-entity role.
const (
	defaultLoginIdleTTL = 30 * 24 * time.Hour
	minLoginIdleTTL     = time.Minute
	maxLoginIdleTTL     = 365 * 24 * time.Hour
)

// loginIdle is how long a person's refreshable token may go unread.
func (r *roleEntry) loginIdle() time.Duration {
	if r.LoginIdleTTL > 0 {
		return r.LoginIdleTTL
	}
	return defaultLoginIdleTTL
}

// subjectClaim is the ID token claim bound_subject is compared with.
func (r *roleEntry) subjectClaim() string {
	if r.BoundSubjectClaim != "" {
		return r.BoundSubjectClaim
	}
	return "sub"
}

// scopes is what the role asks for: its own, else the config's (which
// already hold the preset's default).
func (r *roleEntry) scopes(cfg *configState) []string {
	if len(r.Scopes) > 0 {
		return r.Scopes
	}
	return cfg.entry.Scopes
}

// requestShape is what makes two token requests interchangeable.
type requestShape struct {
	Config     string            `json:"config"`
	Generation string            `json:"generation"`
	Grant      string            `json:"grant"`
	Scopes     []string          `json:"scopes"`
	Extra      map[string]string `json:"extra"`
	Grants     *roleGrantFields  `json:"grants,omitempty"`
}

// fingerprint identifies the request a token answers: client and operator
// (through the config's generation), grant, scopes and extra parameters.
func fingerprint(r *roleEntry, cfg *configState) string {
	scopes := slices.Clone(r.scopes(cfg))
	slices.Sort(scopes)
	shape := requestShape{ // map keys marshal sorted
		Config: r.Config, Generation: cfg.entry.Generation, Grant: r.GrantType, Scopes: scopes, Extra: r.ExtraParams,
	}
	if !r.roleGrantFields.isZero() {
		shape.Grants = &r.roleGrantFields
	}
	raw, _ := json.Marshal(shape)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// role returns the named role, from memory when it can.
func (b *idpBackend) role(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	r, _, err := b.roles.Load(name, func() (*roleEntry, bool, error) {
		r, err := loadRoleEntry(ctx, s, name)
		return r, r != nil, err
	})
	return r, err
}

func loadRoleEntry(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	return getJSON[roleEntry](ctx, s, rolePrefix+name)
}

func (b *idpBackend) storeRole(ctx context.Context, s logical.Storage, name string, r *roleEntry) error {
	if err := putJSON(ctx, s, rolePrefix+name, r); err != nil {
		return err
	}
	b.roles.Set(name, r)
	return nil
}

// rolesOf lists the roles that use a config.
func (b *idpBackend) rolesOf(ctx context.Context, s logical.Storage, config string) (map[string]*roleEntry, error) {
	return b.rolesWhere(ctx, s, func(r *roleEntry) bool { return r.Config == config })
}

// rolesWhere lists the stored roles that keep says to keep.
func (b *idpBackend) rolesWhere(ctx context.Context, s logical.Storage, keep func(*roleEntry) bool) (map[string]*roleEntry, error) {
	names, err := s.List(ctx, rolePrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]*roleEntry{}
	for _, n := range names {
		r, err := b.role(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if r != nil && keep(r) {
			out[n] = r
		}
	}
	return out, nil
}

// dropTokensOfConfig deletes every cached token minted through a config.
func (b *idpBackend) dropTokensOfConfig(ctx context.Context, s logical.Storage, config string) error {
	roles, err := b.rolesOf(ctx, s, config)
	if err != nil {
		return err
	}
	return b.dropTokensOfRoles(ctx, s, config, roles)
}

// dropTokensOfRoles deletes the config's shared token and every token of
// its roles: each role's one, its people's and subjects', its exchanges.
func (b *idpBackend) dropTokensOfRoles(ctx context.Context, s logical.Storage, config string, roles map[string]*roleEntry) error {
	if err := b.tokens.Drop(ctx, storageKV{s}, configTokenKey(config).String()); err != nil {
		return err
	}
	for name := range roles {
		if err := b.dropRoleTokens(ctx, s, name); err != nil {
			return err
		}
	}
	return nil
}

// dropRoleTokens drops every token of a role (not a token its
// single-active config shares): its one token, its people's and
// subjects', and its exchanges of callers' subject tokens. A role written
// again under the name starts afresh.
func (b *idpBackend) dropRoleTokens(ctx context.Context, s logical.Storage, name string) error {
	b.tokens.DropEphemeral(familyPrefix(familyExchange, name))
	for _, prefix := range familiesOfRole(name) {
		if _, err := b.tokens.DropPrefix(ctx, storageKV{s}, prefix); err != nil {
			return err
		}
	}
	return b.tokens.Drop(ctx, storageKV{s}, roleTokenKey(name).String())
}

// holdersChanged: r keeps its tokens for other holders than old did (per
// person or not), or binds its logins otherwise: tokens held under old must
// not be served under r.
func (old *roleEntry) holdersChanged(r *roleEntry) bool {
	return old.PerEntity != r.PerEntity || old.BoundSubject != r.BoundSubject || old.subjectClaim() != r.subjectClaim()
}

// grant is the role's grant as a backend type.
func (r *roleEntry) grant() backend.GrantType { return backend.GrantType(r.GrantType) }

// roleAndConfig loads a role and its config, from memory when it can. A
// missing one is a user error (the response), not a failure.
func (b *idpBackend) roleAndConfig(ctx context.Context, s logical.Storage, name string) (*roleEntry, *configState, *logical.Response, error) {
	role, err := b.role(ctx, s, name)
	if err != nil {
		return nil, nil, nil, err
	}
	if role == nil {
		return nil, nil, logical.ErrorResponse("no role named %q", name), nil
	}
	cfg, err := b.config(ctx, s, role.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg == nil {
		return nil, nil, logical.ErrorResponse("role %q uses config %q, which does not exist", name, role.Config), nil
	}
	return role, cfg, nil, nil
}

// dropLogins forgets every login pending for a role (authorization-code
// states, the device login and its poller), before the role is deleted.
func (b *idpBackend) dropLogins(ctx context.Context, s logical.Storage, name string) error {
	if err := b.dropPendingLogins(ctx, s, name); err != nil {
		return err
	}
	b.devices.stopRole(name)
	b.devices.writeMu.Lock()
	defer b.devices.writeMu.Unlock()
	slots, err := logical.CollectKeysWithPrefix(ctx, s, deviceLoginPrefix+name+"/")
	if err != nil {
		return err
	}
	for _, key := range append(slots, deviceLoginPrefix+name) {
		if err := s.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// fingerprintMemo is a role's fingerprint under one config state.
type fingerprintMemo struct {
	role *roleEntry
	fp   string
}

// cachedFingerprint is fingerprint(role, cfg), computed once per (role,
// config) version instead of on every read: the JSON encoding and SHA-256
// were an eighth of a cache-hit read's CPU. Roles and config states are
// immutable once cached (a write stores a new pointer), so the memo, kept on
// the config state and keyed by role name, is valid while it names the same
// role pointer. A config write makes a new config state and so a new memo;
// a deleted role's entry stays until then (one small entry per name).
func cachedFingerprint(name string, role *roleEntry, cfg *configState) string {
	if v, ok := cfg.fingerprints.Load(name); ok {
		if m := v.(fingerprintMemo); m.role == role {
			return m.fp
		}
	}
	fp := fingerprint(role, cfg)
	cfg.fingerprints.Store(name, fingerprintMemo{role: role, fp: fp})
	return fp
}

// killsSharedToken is the warning of an operator's action (a "write", a
// "drop") after which the next read of a single-active config mints, so
// that the IdP kills the current token under the leases already handed out.
func killsSharedToken(what, action string) string {
	return what + ": the next read mints a new token, and the IdP then invalidates the current one, also under leases handed out before this " + action
}

// sharedTokenWarning is a write's answer that carries killsSharedToken.
func sharedTokenWarning(what string) *logical.Response {
	return &logical.Response{Warnings: []string{killsSharedToken(what, "write")}}
}

// renewable says whether the role's creds leases are renewable: asked for,
// and never on a single-active config, where Vault Proxy would replay a
// cached lease past the next mint.
func (r *roleEntry) renewable(singleActive bool) bool { return r.RenewableLeases && !singleActive }
