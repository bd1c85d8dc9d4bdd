package idptokens

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The auth-state sweep does nothing where storage is read-only.
func TestSweepSkipsReadOnlyNodes(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	a.begin("myid", nil)
	a.moveClock(time.Hour)
	a.sys.ReplicationStateVal = consts.ReplicationPerformanceSecondary
	if err := a.b.sweepAuthStates(context.Background(), &logical.Request{Storage: a.storage}); err != nil {
		t.Fatal(err)
	}
	if len(a.storedStates()) != 1 {
		t.Fatal("the sweep deleted on a performance secondary")
	}
	a.sys.ReplicationStateVal = 0
	if err := a.b.sweepAuthStates(context.Background(), &logical.Request{Storage: a.storage}); err != nil || len(a.storedStates()) != 0 {
		t.Fatalf("the active node's sweep: %v, %d states left", err, len(a.storedStates()))
	}
}
