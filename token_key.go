package idptokens

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// Where a token is held, below backend.TokenPrefix:
//
//	role/<role>                 a role's one token
//	config/<config>             the one token every role of a single-active config shares
//	entity/<role>/<entity id>   a person's own token of a per_entity role
//	subject/<role>/<digest>     the token of one resolved jwt_subject template
//	exchange/<role>/<digest>    an exchange of a caller's subject token (memory only)

// Key families of a role's many tokens.
const (
	familyEntity   = "entity"
	familySubject  = "subject"
	familyExchange = "exchange"
)

// tokenKey names where a token is held.
type tokenKey struct {
	shared bool   // the config's shared token
	name   string // the role's name, or the config's when shared
	family string // one of the families above; "" for the role's one token
	member string // the family member: an entity ID or a digest
}

func roleTokenKey(role string) tokenKey  { return tokenKey{name: role} }
func configTokenKey(cfg string) tokenKey { return tokenKey{shared: true, name: cfg} }

// exchangeTokenKey is where role's exchange of a caller's subject token is
// held: under a digest of the token, never the token itself.
func exchangeTokenKey(role, subjectTokenType, subjectToken string) tokenKey {
	return tokenKey{name: role, family: familyExchange, member: backend.SubjectDigest(subjectTokenType, subjectToken)}
}

// familyPrefix is the prefix of every key of role in family.
func familyPrefix(family, role string) string { return family + "/" + role + "/" }

// String is the key below backend.TokenPrefix.
func (k tokenKey) String() string {
	switch {
	case k.shared:
		return "config/" + k.name
	case k.family != "":
		return familyPrefix(k.family, k.name) + k.member
	}
	return "role/" + k.name
}

// many: a key of a family that may hold a token per person, held in memory
// by the store's bounded cache.
func (k tokenKey) many() bool { return k.family == familyEntity || k.family == familySubject }

// holder is whose token of a role a request is about: the role's one
// token (the zero holder), a person's own (per_entity), or the token of
// one resolved jwt_subject template.
type holder struct {
	entity string // the caller's entity ID, for per_entity roles and templates
	// perEntity: the token is the entity's own (a per_entity role, or an
	// exchange of such a role's token).
	perEntity bool
	// assertion is the role's resolved jwt_subject and jwt_claims, for a
	// role whose subject is a template.
	assertion *resolvedAssertion
}

// tokenKeyOf is where the role's token for h is held. A config whose IdP
// keeps one live token per client shares one token among all its roles,
// as a second token would invalidate the first.
func tokenKeyOf(roleName string, r *roleEntry, cfg *configState, h holder) tokenKey {
	switch {
	case cfg.singleActive:
		return configTokenKey(r.Config)
	case h.perEntity:
		return tokenKey{name: roleName, family: familyEntity, member: h.entity}
	case h.assertion != nil:
		return tokenKey{name: roleName, family: familySubject, member: h.assertion.digest()}
	}
	return roleTokenKey(roleName)
}

// familiesOfRole are the prefixes of the role's tokens of many.
func familiesOfRole(role string) []string {
	return []string{familyPrefix(familyEntity, role), familyPrefix(familySubject, role)}
}

// digestOf is a short hash naming a value in a key without holding it.
func digestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
