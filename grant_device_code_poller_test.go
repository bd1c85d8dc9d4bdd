package idptokens

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// A new request replaces the pending login; a changed role stops polling.
func TestDeviceCodeReplacedAndRoleChanged(t *testing.T) {
	e := newTestEnv(t)
	idp, _ := deviceEnv(t, e, fakeidp.DeviceOptions{})
	first := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	second := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	idp.Approve(first)
	time.Sleep(2500 * time.Millisecond)                     // a poll or two of the second login
	e.fails(logical.ReadOperation, "creds/tv", nil, second) // still waiting for the second code
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"min_ttl": 30})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l, _ := loadDeviceLogin(context.Background(), e.storage, "tv"); l != nil && l.Ended == deviceEndRoleChanged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("polling did not stop after the role changed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	idp.Approve(second)
	e.fails(logical.ReadOperation, "creds/tv", nil, "the last device login ended (role_changed")
}

// The pending login survives a restart: the new backend resumes polling
// (periodic function or first creds read).
func TestDeviceCodeSurvivesRestart(t *testing.T) {
	e := newTestEnv(t)
	idp, base := deviceEnv(t, e, fakeidp.DeviceOptions{})
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	e.b.devices.stopAll() // the node stops
	e2 := newTestEnv(t, onStorage(e.storage))
	e2.b.devices.slowDown = time.Second
	t.Cleanup(e2.b.devices.stopAll)
	if err := e2.b.periodic(context.Background(), &logical.Request{Storage: e2.storage}); err != nil {
		t.Fatal(err)
	}
	idp.Approve(uc)
	if creds, last := e2.credsEventually("tv", 20*time.Second); creds == nil {
		t.Fatalf("no token after restart; creds says %q (IdP %s)", last, base)
	}
}

// Deleting the role deletes its pending login and stops the poller.
func TestDeviceCodeRoleDeleted(t *testing.T) {
	e := newTestEnv(t)
	idp, _ := deviceEnv(t, e, fakeidp.DeviceOptions{})
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	e.ok(logical.DeleteOperation, "roles/tv", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l, _ := loadDeviceLogin(context.Background(), e.storage, "tv"); l == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the login of a deleted role is still stored")
		}
		time.Sleep(50 * time.Millisecond)
	}
	idp.Approve(uc)
	polls, _, _ := idp.Stats()
	time.Sleep(2500 * time.Millisecond)
	if after, _, _ := idp.Stats(); after != polls {
		t.Fatalf("%d polls after the role was deleted", after-polls)
	}
}

// After a restart, the first creds read of the role resumes polling at once.
func TestDeviceCodeResumedByCredsRead(t *testing.T) {
	e := newTestEnv(t)
	idp, _ := deviceEnv(t, e, fakeidp.DeviceOptions{})
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	e.b.devices.stopAll()
	e2 := newTestEnv(t, onStorage(e.storage))
	t.Cleanup(e2.b.devices.stopAll)
	idp.Approve(uc)
	polls, _, _ := idp.Stats()
	e2.fails(logical.ReadOperation, "creds/tv", nil, "waits for a device login")
	if creds, last := e2.credsEventually("tv", 20*time.Second); creds == nil {
		t.Fatalf("no token after the read resumed polling; creds says %q", last)
	}
	if after, _, _ := idp.Stats(); after <= polls {
		t.Fatal("the token came without a poll by the new backend")
	}
}

// A poll whose answer is in flight when the role is deleted stores
// nothing, and a role written again under the name needs a login of its own.
func TestDevicePollRacingRoleDeleteStoresNothing(t *testing.T) {
	e := newTestEnv(t)
	g := newGate("/token")
	idp, _ := deviceEnvOn(t, e, fakeidp.DeviceOptions{}, g.wrap, nil)
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	idp.Approve(uc)
	<-g.arrived // the first poll, which will be answered with a token
	e.ok(logical.DeleteOperation, "roles/tv", nil)
	g.open()
	time.Sleep(500 * time.Millisecond) // the poll's answer lands
	for _, key := range []string{"tokens/role/tv", deviceLoginPrefix + "tv"} {
		if raw := e.stored(key); raw != nil {
			t.Fatalf("storage holds %s for the deleted role", key)
		}
	}
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"config": "tv", "grant_type": "device_code", "scopes": "tv.watch"})
	e.fails(logical.ReadOperation, "creds/tv", nil, "needs a device login")
}

// On a single-active config a device login's polls wait while the current
// token is held under a lease: the poll that would kill it is not sent.
func TestDevicePollOnSingleActiveConfigWaitsForTheHold(t *testing.T) {
	e := newTestEnv(t)
	idp, _ := deviceEnvOn(t, e, fakeidp.DeviceOptions{TokenTTL: 10 * time.Minute}, nil, map[string]any{"single_active_token": true})
	e.b.devices.storage = nil // polls driven by the test
	login := func() string {
		uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
		idp.Approve(uc)
		l, err := loadDeviceLogin(context.Background(), e.storage, "tv")
		if err != nil || l == nil {
			t.Fatal("no pending login", err)
		}
		return l.ID
	}
	if !e.b.pollDeviceOnce(context.Background(), e.storage, "tv", login()) {
		t.Fatal("the first login's poll did not complete it")
	}
	first := e.creds("tv").Data["access_token"].(string)
	id := login()
	polls, _, _ := idp.Stats()
	if e.b.pollDeviceOnce(context.Background(), e.storage, "tv", id) {
		t.Fatal("the second login completed while the first token is held under a lease")
	}
	if after, _, _ := idp.Stats(); after != polls {
		t.Fatalf("%d polls sent while the token they would kill is held", after-polls)
	}
	if e.creds("tv").Data["access_token"] != first {
		t.Fatal("the held token is no longer served")
	}
}

// slow_down adds 5 s to the interval (RFC 8628 3.5), with the backend as
// Factory makes it: the stored login then waits the IdP's interval plus 5 s.
func TestSlowDownAddsFiveSeconds(t *testing.T) {
	e := newTestEnv(t)
	idp := fakeidp.NewDevice(fakeidp.DeviceOptions{ClientID: "tv-client", ClientSecret: "tv-secret", Scope: "tv.watch", Interval: 2})
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	e.b.devices.storage = nil // polls driven by the test
	e.ok(logical.UpdateOperation, "config/tv", map[string]any{"token_url": srv.URL + "/token", "device_authorization_url": srv.URL + "/device",
		"client_id": "tv-client", "client_secret": "tv-secret"})
	e.ok(logical.UpdateOperation, "roles/tv", map[string]any{"config": "tv", "grant_type": "device_code", "scopes": "tv.watch"})
	uc := e.ok(logical.UpdateOperation, "device-code/tv", nil).Data["user_code"].(string)
	idp.SlowDown(uc)
	l, _ := loadDeviceLogin(context.Background(), e.storage, "tv")
	if e.b.pollDeviceOnce(context.Background(), e.storage, "tv", l.ID) {
		t.Fatal("a slow_down ended the login")
	}
	after, _ := loadDeviceLogin(context.Background(), e.storage, "tv")
	if after.Interval != 7*time.Second || e.b.devices.wait(after) != 7*time.Second {
		t.Fatalf("interval after slow_down %s (waits %s), want the IdP's 2s plus 5s", after.Interval, e.b.devices.wait(after))
	}
}
