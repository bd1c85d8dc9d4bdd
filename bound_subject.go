package idptokens

import (
	"context"
	"errors"
	"fmt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// A login lands only under its own person: with bound_subject, the ID
// token the login's code exchange (or device poll) returns is verified
// (signature against the issuer's keys, iss, aud, exp, the nonce of the
// login Vault began) and its bound_subject_claim must equal the role's
// bound_subject as resolved for the entity that began the login. Without
// it, Alice could send her login URL to Bob and end up holding his token.

// subjectMismatchError: the login's ID token is not the beginner's; Token
// is what the login obtained, to revoke.
type subjectMismatchError struct {
	reason string
	token  *backend.Token
}

func (e *subjectMismatchError) Error() string { return e.reason }

// checkLoginSubject returns nil when the role binds no subject, or when
// tok's ID token is the one of entityID's person.
func (b *idpBackend) checkLoginSubject(ctx context.Context, cfg *configState, role *roleEntry, entityID, nonce string, tok *backend.Token) error {
	if role.BoundSubject == "" {
		return nil
	}
	refuse := func(format string, args ...any) error {
		return &subjectMismatchError{reason: fmt.Sprintf(format, args...), token: tok}
	}
	claims, err := backend.VerifyIDToken(ctx, tok.IDToken, backend.IDTokenCheck{
		Issuer: cfg.entry.Issuer, ClientID: cfg.entry.ClientID, Nonce: nonce, Keys: cfg.idpKeys, Now: b.now(),
	})
	if err != nil {
		if backend.IsIDTokenError(err) {
			return refuse("%v", err)
		}
		return err // the keys could not be read: the IdP's or the network's fault
	}
	entity, err := b.entity(entityID)
	if err != nil {
		return refuse("the Vault entity that began the login cannot be read (%v)", err)
	}
	want, err := resolveTemplate("bound_subject", role.BoundSubject, entity)
	if err != nil {
		return refuse("%v", err)
	}
	got, _ := claims[role.subjectClaim()].(string)
	if got == "" || got != want {
		return refuse("the login was completed by someone else than the Vault entity that began it (the ID token's %s does not match the role's bound_subject)", role.subjectClaim())
	}
	return nil
}

// isSubjectMismatch says whether err refused a login for its subject.
func isSubjectMismatch(err error) (*subjectMismatchError, bool) {
	var m *subjectMismatchError
	return m, errors.As(err, &m)
}

func isSubjectMismatchErr(err error) bool { _, ok := isSubjectMismatch(err); return ok }
