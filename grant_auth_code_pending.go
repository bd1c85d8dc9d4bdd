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

// pendingLogin is one entry of an index of pending logins.
type pendingLogin struct {
	Key     string    `json:"key"` // authStatePrefix + sha256(state)
	Expires time.Time `json:"expires"`
}

// pendingIndex is where the pending logins of a role are indexed: one
// index per role, or per entity of a per_entity role (deviceSlot), so
// that one person's logins never push out another's.
func pendingIndex(role, entity string) string { return pendingPrefix + deviceSlot(role, entity) }

// storePendingLogin stores the state of a login just begun and enters it in
// its index, evicting the oldest pending logins beyond the bound and
// forgetting ones that expired or completed.
func (b *idpBackend) storePendingLogin(ctx context.Context, s logical.Storage, key string, st *authState) error {
	b.stateLock.Lock()
	defer b.stateLock.Unlock()
	index := pendingIndex(st.Role, st.Entity)
	list, err := b.pendingLogins(ctx, s, index)
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
	return putJSON(ctx, s, index, list)
}

// pendingLogins is an index, less logins expired or completed.
func (b *idpBackend) pendingLogins(ctx context.Context, s logical.Storage, index string) ([]pendingLogin, error) {
	list, err := getJSON[[]pendingLogin](ctx, s, index)
	if errors.Is(err, errUnreadable) {
		b.Logger().Warn("dropped an unreadable index of pending logins", "index", index)
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

// dropPendingLogins forgets every pending login of a deleted role, its
// people's included.
func (b *idpBackend) dropPendingLogins(ctx context.Context, s logical.Storage, role string) error {
	b.stateLock.Lock()
	defer b.stateLock.Unlock()
	indexes, err := logical.CollectKeysWithPrefix(ctx, s, pendingPrefix+role+"/")
	if err != nil {
		return err
	}
	for _, index := range append(indexes, pendingPrefix+role) {
		list, err := b.pendingLogins(ctx, s, index)
		if err != nil {
			return err
		}
		for _, p := range list {
			if err := s.Delete(ctx, p.Key); err != nil {
				return err
			}
		}
		if err := s.Delete(ctx, index); err != nil {
			return err
		}
	}
	return nil
}
