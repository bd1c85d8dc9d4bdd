package backend

import "time"

// HoldOf is how long a holder of t may still rely on it at now, for a lease
// renewal: the same holding period a read would be handed (remaining life
// less HoldSkew; for SingleActive tokens, until the next mint may happen
// less HoldSkew), but without the reader's MinRemaining, since the holder
// already has the token. ok is false when t may not be relied on at all
// any more: gone, marked Unusable, minted for another request, or less than
// MinHold left.
func (s *TokenStore) HoldOf(t *StoredToken, w Want, now time.Time) (hold time.Duration, ok bool) {
	if t == nil || t.Unusable || t.Fingerprint != w.Fingerprint {
		return 0, false
	}
	if w.SingleActive {
		hold = t.mintAfter().Sub(now) - HoldSkew
	} else {
		hold = t.Remaining(now) - HoldSkew
	}
	return hold, hold >= MinHold
}
