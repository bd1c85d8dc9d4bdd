package backend

import (
	"errors"
	"testing"
)

func TestCacheLoad(t *testing.T) {
	var c Cache[string]
	loads := 0
	load := func(v string, found bool, err error) func() (string, bool, error) {
		return func() (string, bool, error) { loads++; return v, found, err }
	}
	if _, ok, err := c.Load("k", load("", false, nil)); ok || err != nil {
		t.Fatalf("Load of a missing key = %v, %v", ok, err)
	}
	if _, ok := c.Get("k"); ok {
		t.Error("a miss was cached")
	}
	boom := errors.New("boom")
	if _, _, err := c.Load("k", load("x", true, boom)); !errors.Is(err, boom) {
		t.Fatalf("Load error = %v", err)
	}
	if _, ok := c.Get("k"); ok {
		t.Error("a failed load was cached")
	}
	if v, ok, err := c.Load("k", load("v1", true, nil)); v != "v1" || !ok || err != nil {
		t.Fatalf("Load = %q, %v, %v", v, ok, err)
	}
	if v, ok, _ := c.Load("k", load("v2", true, nil)); v != "v1" || !ok || loads != 3 {
		t.Errorf("second Load = %q after %d loads; want the cached v1 without loading", v, loads)
	}
	c.Set("k", "v3")
	if v, _ := c.Get("k"); v != "v3" {
		t.Errorf("Get after Set = %q", v)
	}
	c.Set("j", "w")
	if c.Len() != 2 {
		t.Errorf("Len = %d", c.Len())
	}
	c.Drop("k")
	if _, ok := c.Get("k"); ok || c.Len() != 1 {
		t.Error("Drop did not forget k, or forgot more")
	}
	c.Clear()
	if c.Len() != 0 {
		t.Error("Clear kept entries")
	}
}

// A load that began before a Drop (Vault's Invalidate: another node wrote)
// must not cache what it read, which may be the old value.
func TestCacheLoadRacingDrop(t *testing.T) {
	for _, drop := range []func(c *Cache[string]){
		func(c *Cache[string]) { c.Drop("k") },
		func(c *Cache[string]) { c.Drop("other") },
		func(c *Cache[string]) { c.Clear() },
	} {
		var c Cache[string]
		v, ok, err := c.Load("k", func() (string, bool, error) {
			drop(&c)
			return "stale", true, nil
		})
		if v != "stale" || !ok || err != nil {
			t.Fatalf("Load = %q, %v, %v", v, ok, err)
		}
		if got, cached := c.Get("k"); cached {
			t.Errorf("a value loaded across a drop was cached: %q", got)
		}
	}
}

// A cold load that read the old value while a writer stored and Set a new
// one must not overwrite the newer value in memory (after a restart, a read
// would otherwise cache a role an admin had just narrowed).
func TestCacheLoadRacingSet(t *testing.T) {
	var c Cache[string]
	v, ok, err := c.Load("k", func() (string, bool, error) {
		c.Set("k", "new") // the writer lands while the load reads storage
		return "old", true, nil
	})
	if err != nil || !ok || v != "old" {
		t.Fatalf("Load = %q, %v, %v; want the value it read", v, ok, err)
	}
	if got, _ := c.Get("k"); got != "new" {
		t.Fatalf("cached %q after a racing Set, want the writer's %q", got, "new")
	}
}

func TestCacheEach(t *testing.T) {
	var c Cache[int]
	c.Set("a", 1)
	c.Set("b", 2)
	sum := 0
	c.Each(func(_ string, v int) { sum += v })
	if sum != 3 {
		t.Fatalf("Each visited a sum of %d, want 3", sum)
	}
}

// A bounded cache forgets its least recently used entries beyond the
// bound; a Get counts as a use.
func TestCacheBound(t *testing.T) {
	var c Cache[int]
	c.SetBound(2)
	c.Set("a", 1)
	c.Set("b", 2)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("a missing")
	}
	c.Set("c", 3) // evicts b: a was used after it
	if _, ok := c.Get("b"); ok {
		t.Fatal("b, the least recently used, is still held")
	}
	if _, ok := c.Get("a"); !ok || c.Len() != 2 {
		t.Fatalf("a held %v, Len %d; want a and c", ok, c.Len())
	}
	if n := c.DropPrefix("a"); n != 1 || c.Len() != 1 {
		t.Fatalf("DropPrefix(a) = %d, Len %d", n, c.Len())
	}
	c.Set("d", 4)
	c.Set("e", 5)
	if c.Len() != 2 {
		t.Fatalf("Len %d after a drop and two sets, want the bound 2", c.Len())
	}
}
