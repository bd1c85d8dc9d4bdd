// Pending logins of the authorization code flow, bounded per role: whoever
// may call auth-url cannot fill storage with states.

package idptokens

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// maxPendingLogins per role: a newer login replaces the oldest.
const maxPendingLogins = 3

// pendingLogin is one entry of a role's index.
type pendingLogin struct {
	Key     string    `json:"key"` // authStatePrefix + sha256(state)
	Expires time.Time `json:"expires"`
}

// storePendingLogin stores the state of a login just begun and enters it in
// its role's index, evicting the oldest pending logins beyond the bound and
// forgetting ones that expired or completed.
func (b *idpBackend) storePendingLogin(ctx context.Context, s logical.Storage, key string, st *authState) error {
	b.stateLock.Lock()
	defer b.stateLock.Unlock()
	list, err := b.pendingLogins(ctx, s, st.Role)
	if err != nil {
		return err
	}
	if err := putJSON(ctx, s, key, st); err != nil {
		return err
	}
	list = append(list, pendingLogin{Key: key, Expires: st.Expires})
	for len(list) > maxPendingLogins {
		if err := s.Delete(ctx, list[0].Key); err != nil {
			return err
		}
		list = list[1:]
	}
	return putJSON(ctx, s, pendingPrefix+st.Role, list)
}

// pendingLogins is the role's index, less logins expired or completed.
func (b *idpBackend) pendingLogins(ctx context.Context, s logical.Storage, role string) ([]pendingLogin, error) {
	list, err := getJSON[[]pendingLogin](ctx, s, pendingPrefix+role)
	if errors.Is(err, errUnreadable) {
		b.Logger().Warn("dropped an unreadable index of pending logins", "role", role)
		return nil, nil
	}
	if err != nil || list == nil {
		return nil, err
	}
	now := b.now()
	var live []pendingLogin
	for _, p := range *list {
		if !now.Before(p.Expires) {
			continue
		}
		if e, err := s.Get(ctx, p.Key); err != nil {
			return nil, err
		} else if e != nil {
			live = append(live, p)
		}
	}
	return live, nil
}

// dropPendingLogins forgets every pending login of a deleted role.
func (b *idpBackend) dropPendingLogins(ctx context.Context, s logical.Storage, role string) error {
	b.stateLock.Lock()
	defer b.stateLock.Unlock()
	list, err := b.pendingLogins(ctx, s, role)
	if err != nil {
		return err
	}
	for _, p := range list {
		if err := s.Delete(ctx, p.Key); err != nil {
			return err
		}
	}
	return s.Delete(ctx, pendingPrefix+role)
}
