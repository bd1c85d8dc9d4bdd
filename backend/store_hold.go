package backend

import "time"

// The margin: how much life a token (of a client whose tokens do not kill
// each other) keeps when the cache stops handing it out, so that whoever
// holds it has time to read again and switch before it ends (a consumer
// that re-reads a second after it was told to, in-flight requests, clock
// drift between Vault and the IdP). A fifth of the lifetime (as kubelet
// rotates a projected service account token at 80 % of its life), at least
// MarginFloor, at most MarginCeiling; a reader's MinRemaining (the role's
// or the read's min_ttl) when larger; and never more than half the
// lifetime, so that no setting makes every read fetch.
const (
	// MarginShare: the margin is lifetime/MarginShare.
	MarginShare = 5
	// MarginFloor: a reader told when the next token is ready re-reads up
	// to a second after it (whole seconds), and is then handed a token
	// that may still be relied on for MinHold: tokens of 10 s or less keep
	// this, as they always did.
	MarginFloor = HoldSkew + MinHold
	// MarginCeiling: long-lived tokens are not fetched again more than this
	// long before their end (a consumer's switch takes seconds, and every
	// minute of margin is that much more of the IdP's tokens).
	MarginCeiling = 5 * time.Minute
)

// Margin is the margin of a token of this lifetime, before a reader's
// MinRemaining and the half-lifetime cap.
func Margin(lifetime time.Duration) time.Duration {
	return min(max(lifetime/MarginShare, MarginFloor), MarginCeiling)
}

// need is the life t must have left to be handed out to w's read (not
// SingleActive): the margin, or w.MinRemaining when larger, capped at half
// the lifetime.
func need(t *StoredToken, w Want) time.Duration {
	lifetime := t.Expiry.Sub(t.ObtainedAt)
	return min(max(Margin(lifetime), w.MinRemaining), lifetime/2)
}

// handOutUntil is the last moment t is handed out to w's reads (not
// SingleActive): while it has need left, and at least the shortest lease
// (MinHold after HoldSkew: a token of a few seconds would otherwise be
// handed out with a lease past its end), and before its ReuseUntil less
// HoldSkew (see gone). A read after it is handed the next token.
func handOutUntil(t *StoredToken, w Want) time.Time {
	until := t.Expiry.Add(-max(need(t, w), MinHold+HoldSkew))
	if !t.ReuseUntil.IsZero() && t.ReuseUntil.Add(-HoldSkew).Before(until) {
		until = t.ReuseUntil.Add(-HoldSkew)
	}
	return until
}

// rotatesIn is how long after now a read like w's is still handed t: a read
// rotatesIn plus a second after now is handed the next token. For
// SingleActive tokens it is the holding period (every holder is done by
// then), and the read a second later mints the next token at MintAfter,
// after a wait shorter than a second: the moment no holder relies on t. It
// may be below a second, or negative for a token handed out past it (a
// fresh token whose fetch took half its life).
func rotatesIn(t *StoredToken, w Want, now time.Time) time.Duration {
	if w.SingleActive {
		return t.mintAfter().Sub(now) - HoldSkew
	}
	return handOutUntil(t, w).Sub(now)
}

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
