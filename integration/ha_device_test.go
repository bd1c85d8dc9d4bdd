//go:build integration

package integration

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// TestHADeviceLoginFailover: a device login begun on the active node of a
// three-node raft cluster survives the loss of that node. The pending login
// is in replicated storage; the new active node's periodic function resumes
// polling without any read, and once the person has logged in the token is
// served through the new leader.
func TestHADeviceLoginFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("HA test skipped in -short mode")
	}
	// Three Vault processes, mostly waiting (on raft, elections, the
	// periodic function): beside the other tests.
	t.Parallel()
	nodes := startRaftCluster(t, 3)
	active := nodes[0]
	active.RegisterAndMount()
	idp := fakeidp.NewDevice(fakeidp.DeviceOptions{ClientID: "ha-tv", ClientSecret: "ha-tv-secret", Scope: "watch", Interval: 1})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	active.Write("idp/config/tv", "token_url="+srv.URL+"/token", "device_authorization_url="+srv.URL+"/device",
		"client_id=ha-tv", "client_secret=ha-tv-secret")
	active.Write("idp/roles/tv", "config=tv", "grant_type=device_code", "scopes=watch")
	var dc Secret
	active.JSON(&dc, "write", "-f", "idp/device-code/tv")
	if !eventually(30*time.Second, 100*time.Millisecond, func() bool { p, _, _ := idp.Stats(); return p > 0 }) {
		t.Fatal("the active node never polled")
	}

	active.kill(t)
	killed := time.Now()
	leader, _ := waitLeader(t, nodes[1:])
	t.Logf("%s leads %s after the kill", leader.id, time.Since(killed).Round(100*time.Millisecond))
	before, _, _ := idp.Stats()
	idp.Approve(dc.String("user_code"))
	// No read: only the new leader's periodic function can resume polling.
	if !eventually(150*time.Second, 250*time.Millisecond, func() bool { p, _, _ := idp.Stats(); return p > before }) {
		t.Fatal("no poll within 150 s of the failover")
	}
	t.Logf("the new leader polled %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	var s Secret
	if !eventually(30*time.Second, 250*time.Millisecond, func() bool {
		r := leader.CLI("read", "-format=json", "idp/creds/tv")
		return r.Err == nil && jsonInto(r.Stdout, &s) && idp.Valid(s.String("access_token"))
	}) {
		t.Fatalf("no token through the new leader: %s", strings.TrimSpace(leader.CLI("read", "idp/creds/tv").Stderr))
	}
	if _, early, _ := idp.Stats(); early != 0 {
		t.Errorf("%d polls came before the interval", early)
	}
}
