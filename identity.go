package idptokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/identitytpl"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// Who a request is for: the caller's identity entity, which Vault puts in
// every request (req.EntityID) and describes (System().EntityInfo), never a
// name the caller picks; and the role fields templated on it with Vault's
// ACL templating syntax.

// templateDirective is a directive a role field may hold:
// {{identity.entity.id}}, {{identity.entity.name}},
// {{identity.entity.metadata.<key>}} and
// {{identity.entity.aliases.<mount accessor>.(id|name|metadata.<key>)}}.
var templateDirective = regexp.MustCompile(`^identity\.entity\.(id|name|metadata\.[^.\s{}]+|aliases\.[^.\s{}]+\.(id|name|metadata\.[^.\s{}]+))$`)

// isTemplate says whether a field value holds a directive.
func isTemplate(s string) bool { return strings.Contains(s, "{{") }

// checkTemplate refuses a value whose directives do not parse, naming field.
func checkTemplate(field, s string) *logical.Response {
	if !isTemplate(s) && !strings.Contains(s, "}}") {
		return nil
	}
	if _, _, err := identitytpl.PopulateString(identitytpl.PopulateStringInput{String: s, ValidityCheckOnly: true, Mode: identitytpl.ACLTemplating}); err != nil {
		return fieldError(field, "the template does not parse: %v", err)
	}
	for _, piece := range strings.Split(s, "{{")[1:] {
		directive := strings.TrimSpace(strings.SplitN(piece, "}}", 2)[0])
		if !templateDirective.MatchString(directive) {
			return fieldError(field, "{{%s}} is not a directive of the caller's entity (identity.entity.id, .name, .metadata.<key>, .aliases.<mount accessor>.name)",
				backend.Sanitize(directive, 80))
		}
	}
	return nil
}

// resolveTemplate fills s for entity. A value the entity lacks is the
// caller's to fix: a user error naming the field.
func resolveTemplate(field, s string, entity *logical.Entity) (string, error) {
	if !isTemplate(s) {
		return s, nil
	}
	_, out, err := identitytpl.PopulateString(identitytpl.PopulateStringInput{String: s, Entity: entity, Mode: identitytpl.ACLTemplating})
	if err != nil {
		return "", &grantUserError{fmt.Sprintf("%s: the caller's entity %q has no value for the template %q (%v)", field, entity.GetName(), backend.Sanitize(s, 120), err)}
	}
	return out, nil
}

// errNoEntity: the role gives each entity its own token, and the request
// carries none (a root token, or a token created without an entity).
func errNoEntity(role string) error {
	return &grantUserError{fmt.Sprintf("role %q gives each entity its own token, and this Vault token has no entity: "+
		"log in through an auth method (userpass, oidc, ...) rather than with a root or entity-less token", role)}
}

// entityMemoTTL is how long an entity's description is reused before Vault
// is asked again: each ask is a round trip from the plugin to Vault.
const entityMemoTTL = 5 * time.Second

type entityMemo struct {
	entity *logical.Entity
	until  time.Time
}

// entity is the entity's description, asked of Vault at most every
// entityMemoTTL.
func (b *idpBackend) entity(id string) (*logical.Entity, error) {
	now := time.Now()
	if m, ok := b.entities.Get(id); ok && now.Before(m.until) {
		return m.entity, nil
	}
	e, err := b.System().EntityInfo(id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &grantUserError{fmt.Sprintf("Vault knows no entity %q", id)}
	}
	b.entities.Set(id, &entityMemo{entity: e, until: now.Add(entityMemoTTL)})
	return e, nil
}

// resolvedAssertion is a jwt_bearer role's templated subject and claims as
// resolved for one entity.
type resolvedAssertion struct {
	subject string
	claims  map[string]any
}

// digest names the resolved assertion in a token key.
func (a *resolvedAssertion) digest() string {
	raw, _ := json.Marshal(a.claims) // map keys marshal sorted
	return digestOf(a.subject, string(raw))
}

// hasTemplates says whether the role's assertion is templated on the
// caller's entity.
func (r *roleEntry) hasTemplates() bool {
	if isTemplate(r.JWTSubject) {
		return true
	}
	for _, v := range r.JWTClaims {
		if s, ok := v.(string); ok && isTemplate(s) {
			return true
		}
	}
	return false
}

// resolveAssertion fills the role's templated subject and claims for entity.
func resolveAssertion(r *roleEntry, entity *logical.Entity) (*resolvedAssertion, error) {
	sub, err := resolveTemplate("jwt_subject", r.JWTSubject, entity)
	if err != nil {
		return nil, err
	}
	claims := make(map[string]any, len(r.JWTClaims))
	for k, v := range r.JWTClaims {
		if s, ok := v.(string); ok {
			if v, err = resolveTemplate("jwt_claims", s, entity); err != nil {
				return nil, err
			}
		}
		claims[k] = v
	}
	return &resolvedAssertion{subject: sub, claims: claims}, nil
}

// holderOf is whose token of role name the request is for: the caller's
// own for a per_entity role (or an exchange of a per_entity role's
// token), the caller's resolved assertion for a templated jwt_bearer role,
// else the role's one token.
func (b *idpBackend) holderOf(req *logical.Request, name string, role *roleEntry, refsPerEntity bool) (holder, error) {
	perEntity := role.PerEntity || refsPerEntity
	if !perEntity && !role.hasTemplates() {
		return holder{}, nil
	}
	if req.EntityID == "" {
		return holder{}, errNoEntity(name)
	}
	h := holder{entity: req.EntityID, perEntity: perEntity}
	if role.hasTemplates() {
		e, err := b.entity(req.EntityID)
		if err != nil {
			return holder{}, err
		}
		if h.assertion, err = resolveAssertion(role, e); err != nil {
			return holder{}, err
		}
	}
	return h, nil
}

// userError says whether err is the caller's to fix (a 400).
func userError(err error) bool {
	var u *grantUserError
	return errors.As(err, &u)
}
