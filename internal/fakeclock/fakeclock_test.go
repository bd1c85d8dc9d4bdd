package fakeclock

import (
	"context"
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	c := New(t0)
	if !c.Now().Equal(t0) {
		t.Fatalf("Now = %s, want %s", c.Now(), t0)
	}
	c.Advance(time.Minute)
	if err := c.Sleep(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.Now().Sub(t0); got != 90*time.Second {
		t.Fatalf("moved %s, want 90s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Second); err == nil {
		t.Fatal("Sleep on a cancelled context returned no error")
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Fatal("Set did not move the clock back")
	}
}
