//go:build integration

package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHAKeyRotationFailover: the raft cluster of TestHAFailover with a
// config whose key is made in Vault and rotated by key_rotation_period. The
// active node is killed while a rotation is under way (the next key
// published, not yet signing). The new leader finishes it from storage: the
// next key signs at its time, the old one leaves the JWKS after its
// overlap and storage at the new leader's periodic run, and the new leader
// makes the rotation after. The JWKS is polled through every live node
// all along: no answer ever lacks the key that signs or the one about to;
// polls fail only while no node leads.
func TestHAKeyRotationFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("HA test skipped in -short mode")
	}
	// Mostly waiting on the rotation's clock: beside the other tests.
	t.Parallel()
	began := time.Now()
	nodes := startRaftCluster(t, 3)
	active := nodes[0]
	active.RegisterAndMount()
	const path = "/v1/idp/jwks/ha-keys"
	// The IdP fetches the JWKS through a node that is never killed.
	op := StartOIDCProvider(t, testTokenTTL, "OIDC_JWKS_URI_CLIENT_URI="+nodes[2].Addr+path)
	active.Write("idp/config/ha-keys", append([]string{"token_url=" + op.Issuer + "/token", "client_id=jwks-uri-client", "scopes=api:read"}, keyFields()...)...)
	active.Write("idp/roles/ha-cc", "config=ha-keys", "grant_type=client_credentials")

	var liveMu sync.Mutex
	live := []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}
	liveAddrs := func() []string {
		liveMu.Lock()
		defer liveMu.Unlock()
		return slices.Clone(live)
	}
	watch := watchJWKS(path, liveAddrs, 200*time.Millisecond)
	time.Sleep(time.Second)
	active.ReadCreds("ha-cc")
	readers := startReaders(active.Token, func() string { return nodes[2].Addr }, []string{"ha-cc"}, 2, 50*time.Millisecond)

	// Wait for a rotation under way, as the active node shows it.
	h := &keyHistory{}
	observe := func(n *haNode) []map[string]any {
		var read Secret
		if r := n.CLI("read", "-format=json", "idp/config/ha-keys"); r.Err != nil {
			return nil
		} else if err := json.Unmarshal([]byte(r.Stdout), &read); err != nil {
			return nil
		}
		var out []map[string]any
		list, _ := read.Data["keys"].([]any)
		for _, x := range list {
			if m, ok := x.(map[string]any); ok {
				out = append(out, m)
			}
		}
		h.observe(out)
		return out
	}
	var pending, signing string
	if !eventually(4*time.Minute, time.Second, func() bool {
		pending, signing = "", ""
		for _, k := range observe(active) {
			switch k["state"] {
			case "next":
				pending = k["kid"].(string)
			case "signing":
				signing = k["kid"].(string)
			}
		}
		return pending != "" && signing != ""
	}) {
		t.Fatal("no rotation began within 4 minutes")
	}
	next := h.get(pending)

	// Kill the active node in the middle of the rotation.
	killed := time.Now()
	active.kill(t)
	liveMu.Lock()
	live = []string{nodes[1].Addr, nodes[2].Addr}
	liveMu.Unlock()
	leader, _ := waitLeader(t, nodes[1:])
	elected := time.Now()
	t.Logf("killed %s %s before %s was to sign; %s leads after %s", active.id, time.Until(next.SignsFrom).Round(time.Second), pending, leader.id, elected.Sub(killed).Round(time.Millisecond))

	// The new leader finishes the rotation and makes the one after.
	var after string
	old := h.get(signing)
	if !eventually(5*time.Minute, time.Second, func() bool {
		keys := observe(leader)
		after = ""
		oldStored := false
		for _, k := range keys {
			kid := k["kid"].(string)
			oldStored = oldStored || kid == signing
			if kid != pending && kid != signing {
				after = kid
			}
		}
		return !oldStored && after != "" && time.Since(old.PublishedUntil) > 0
	}) {
		t.Fatalf("the new leader did not finish the rotation (old key %s, next %s, a newer key %q)", signing, pending, after)
	}
	readers.close()
	snaps := watch.close()

	// The JWKS never lacked the key signing nor the one about to sign.
	failed, failedAfterElection := 0, 0
	for _, s := range snaps {
		if s.Err != nil {
			failed++
			if s.At.After(elected.Add(5 * time.Second)) {
				failedAfterElection++
				t.Errorf("JWKS poll failed %s after the election: %v", s.At.Sub(elected).Round(time.Millisecond), s.Err)
			}
			continue
		}
		var want []string
		if s.At.After(next.Created.Add(time.Second)) { // times read are whole seconds
			want = append(want, pending)
		}
		if s.At.Before(old.PublishedUntil) {
			want = append(want, signing)
		} else if slices.Contains(s.Kids, signing) && s.At.After(old.PublishedUntil.Add(time.Second)) {
			t.Errorf("the JWKS still served %s at %s, past its overlap (%s)", signing, s.At.Format(time.StampMilli), old.PublishedUntil.Format(time.StampMilli))
		}
		for _, kid := range want {
			if !slices.Contains(s.Kids, kid) {
				t.Errorf("a JWKS answer at %s lacked %s: %v", s.At.Format(time.StampMilli), kid, s.Kids)
			}
		}
	}
	// The IdP saw only keys the JWKS served, and the new key after the switch.
	seen := oidcProviderRequests(t, op.Log)
	used := checkAssertionKids(t, "oidc-provider (HA)", seen, snaps)
	if used[pending] == 0 {
		t.Errorf("the key %s the new leader switched to never signed a request the IdP saw (by key: %v)", pending, used)
	}
	afterFirst, _ := firstAndLastServed(snaps, after)
	_, oldLast := firstAndLastServed(snaps, signing)
	t.Logf("JWKS polled %d times through the live nodes, %d failed (all within the election), %d after it; kids used %v; the new leader's own key %s served from %s; "+
		"the old key last served %s (published until %s, read to the second)",
		len(snaps), failed, failedAfterElection, used, after, afterFirst.Format(time.StampMilli), oldLast.Format(time.StampMilli), old.PublishedUntil.Format(time.StampMilli))
	if n := readers.failed.Load(); n > 0 {
		first, last := readers.span()
		others, noActive := readers.failuresBefore(killed)
		if len(others) > 0 {
			t.Errorf("creds reads failed before the kill: %s", strings.Join(others, "; "))
		}
		if noActive > 0 {
			t.Logf("before the kill, %s answered %d reads with Vault's %q (it lost the active node for a moment: raft under load, not the plugin)", nodes[2].id, noActive, noActiveNode)
		}
		t.Logf("creds reads through %s: %d, %d failed, from %s to %s after the kill (the election took %s)", nodes[2].id, readers.reads.Load(), n,
			first.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond), elected.Sub(killed).Round(time.Millisecond))
	} else {
		t.Logf("creds reads through %s: %d, none failed", nodes[2].id, readers.reads.Load())
	}
	t.Logf("HA key test took %s", time.Since(began).Round(time.Second))
}
