package idptokens

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// fetchGrantToken obtains a token for the grants that do not follow
// fetchToken's refresh-then-grant course: token_exchange (exchanged again
// instead of refreshed). handled is false for every other grant.
func (b *idpBackend) fetchGrantToken(ctx context.Context, req *logical.Request, name string, role *roleEntry, cfg *configState, _ *backend.StoredToken) (tok *backend.Token, handled bool, err error) {
	switch role.grant() {
	case backend.GrantTokenExchange:
		tok, err = b.exchangeForRole(ctx, req, name, role, cfg)
		return tok, true, err
	}
	return nil, false, nil
}

// grantUserError is a refusal the user can act on (a 400), such as a role
// that takes its subject token from the caller being read through creds.
type grantUserError struct{ msg string }

func (e *grantUserError) Error() string { return e.msg }
