package idptokens

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

func validateRole(r *roleEntry, cfg *configState) *logical.Response {
	grant, ok := backend.ParseGrant(r.GrantType)
	if !ok {
		return fieldError("grant_type", "must be one of %s, not %q", roleGrantNames(), backend.Sanitize(r.GrantType, 40))
	}
	if !cfg.provider.Supports(grant) {
		return fieldError("grant_type", "provider %s of config %q does not support %s", cfg.provider.Name, r.Config, grant)
	}
	if grant == backend.GrantPassword {
		if _, err := cfg.provider.ComposeUsername(cfg.entry.operator()); err != nil {
			return fieldError("grant_type", "password grant: config %q: %v", r.Config, err)
		}
	}
	if resp := checkScopes("scopes", r.Scopes); resp != nil {
		return resp
	}
	for k, v := range r.ExtraParams {
		if k == "" {
			return fieldError("extra_params", "a parameter name is empty")
		}
		if slices.Contains(backend.ReservedParams, k) {
			return fieldError("extra_params", "%q is set by the engine and cannot be overridden", k)
		}
		if len(k)+len(v) > maxFieldLen {
			return fieldError("extra_params", "parameter %q is too long", k)
		}
	}
	if r.MaxTTL > 0 && r.TTL > r.MaxTTL {
		return fieldError("ttl", "must not exceed max_ttl")
	}
	if r.RenewableLeases && cfg.singleActive {
		return fieldError("renewable_leases", "config %q keeps one live token per client (single_active_token): Vault Proxy replays a cached lease's "+
			"first lease_duration to later readers, who would then rely on the token past the next mint, which kills it; leases stay non-renewable", r.Config)
	}
	if resp := validateRoleGrant(r, cfg); resp != nil {
		return resp
	}
	if resp := checkPerEntity(r, cfg); resp != nil {
		return resp
	}
	return checkPrompt(r)
}

// checkPerEntity: a person's own token comes from a login, and one live
// token per client cannot be one per person; a login bound to its subject
// needs an ID token; every template parses.
func checkPerEntity(r *roleEntry, cfg *configState) *logical.Response {
	grant := r.grant()
	if r.PerEntity {
		switch {
		case grant != backend.GrantAuthorizationCode && grant != backend.GrantDeviceCode:
			return fieldError("per_entity", "is for authorization_code and device_code roles, where a person logs in; this role uses %s "+
				"(a jwt_bearer role gets one token per person from a jwt_subject template)", r.GrantType)
		case cfg.singleActive:
			return fieldError("per_entity", "config %q keeps one live token per client (single_active_token), which cannot be one token per person", r.Config)
		}
	}
	for _, f := range []struct {
		name string
		set  bool
	}{{"bound_subject", r.BoundSubject != ""}, {"bound_subject_claim", r.BoundSubjectClaim != ""}, {"login_idle_ttl", r.LoginIdleTTL > 0}} {
		if f.set && !r.PerEntity {
			return fieldError(f.name, "is for per_entity roles")
		}
	}
	if r.BoundSubject != "" && !slices.Contains(r.scopes(cfg), "openid") {
		return fieldError("bound_subject", "needs an ID token, so the role's scopes must include openid")
	}
	if r.BoundSubject != "" && cfg.entry.Issuer == "" {
		return fieldError("bound_subject", "needs config %q to have an issuer: the ID token's iss is checked against it", r.Config)
	}
	if r.LoginIdleTTL != 0 && (r.LoginIdleTTL < minLoginIdleTTL || r.LoginIdleTTL > maxLoginIdleTTL) {
		return fieldError("login_idle_ttl", "must be between %s and %s", minLoginIdleTTL, maxLoginIdleTTL)
	}
	if resp := checkTemplate("bound_subject", r.BoundSubject); resp != nil {
		return resp
	}
	if resp := checkTemplate("jwt_subject", r.JWTSubject); resp != nil {
		return resp
	}
	for _, v := range r.JWTClaims {
		if s, ok := v.(string); ok {
			if resp := checkTemplate("jwt_claims", s); resp != nil {
				return resp
			}
		}
	}
	if r.hasTemplates() && cfg.singleActive {
		return fieldError("jwt_subject", "config %q keeps one live token per client (single_active_token), which cannot be one token per subject", r.Config)
	}
	return nil
}

// checkSharedToken: roles of a single-active config share one token, so they
// must ask for the same thing, or each read would invalidate the other's.
func (b *idpBackend) checkSharedToken(ctx context.Context, s logical.Storage, name string, r *roleEntry, cfg *configState) (*logical.Response, error) {
	if !cfg.singleActive {
		return nil, nil
	}
	others, err := b.rolesOf(ctx, s, r.Config)
	if err != nil {
		return nil, err
	}
	others[name] = r
	return sharedTokenConflict(cfg, others), nil
}

// sharedTokenConflict is the 400 for roles of a single-active config that
// would ask for different things (grant, scopes, extra_params), naming them.
func sharedTokenConflict(cfg *configState, roles map[string]*roleEntry) *logical.Response {
	byFingerprint := map[string][]string{}
	for _, n := range slices.Sorted(maps.Keys(roles)) {
		fp := fingerprint(roles[n], cfg)
		byFingerprint[fp] = append(byFingerprint[fp], n)
	}
	if len(byFingerprint) < 2 {
		return nil
	}
	groups := make([]string, 0, len(byFingerprint))
	for _, names := range byFingerprint {
		groups = append(groups, strings.Join(names, ", "))
	}
	slices.Sort(groups)
	return logical.ErrorResponse("config %q keeps one live token per client (single_active_token), so every role of it must ask for the same grant, scopes and extra_params; "+
		"roles would ask differently: [%s]", cfg.name, strings.Join(groups, "] vs ["))
}

// validateRoleReferences checks the roles a token_exchange role takes its
// subject and actor tokens from: they exist, are not the role itself, and
// are not token_exchange roles (exchanges do not chain, so no cycle).
func (b *idpBackend) validateRoleReferences(ctx context.Context, s logical.Storage, name string, r *roleEntry) (*logical.Response, error) {
	for _, ref := range []struct{ field, role string }{{"subject_role", r.SubjectRole}, {"actor_role", r.ActorRole}} {
		if ref.role == "" {
			continue
		}
		if ref.role == name {
			return fieldError(ref.field, "cannot be the role itself"), nil
		}
		other, err := b.role(ctx, s, ref.role)
		if err != nil {
			return nil, err
		}
		if other == nil {
			return fieldError(ref.field, "no role named %q", ref.role), nil
		}
		if other.grant() == backend.GrantTokenExchange {
			return fieldError(ref.field, "role %q is itself a token_exchange role; exchanges do not chain", ref.role), nil
		}
	}
	return nil, nil
}

// checkPrompt refuses prompt values other than loginPrompts.
func checkPrompt(r *roleEntry) *logical.Response {
	for _, p := range r.Prompt {
		if !slices.Contains(loginPrompts, p) {
			return fieldError("prompt", "%q is not one of %s", p, strings.Join(loginPrompts, ", "))
		}
	}
	return nil
}
