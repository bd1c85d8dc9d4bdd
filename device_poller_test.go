package idptokens

import (
	"context"
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
	e2 := newTestEnvOn(t, e.storage)
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
	e2 := newTestEnvOn(t, e.storage)
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
