package backend

import "sync"

// lanes serialise the IdP requests of one token key: a read's mint, a
// login's code exchange or device poll, never two at once, whatever door
// they came in by.
type lanes struct {
	mu    sync.Mutex
	lanes map[string]*lane
}

type lane struct {
	mu    sync.Mutex
	users int // holders and waiters; the lane is forgotten at zero
}

// lock takes key's lane and returns its release.
func (l *lanes) lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.lanes == nil {
		l.lanes = map[string]*lane{}
	}
	ln := l.lanes[key]
	if ln == nil {
		ln = &lane{}
		l.lanes[key] = ln
	}
	ln.users++
	l.mu.Unlock()
	ln.mu.Lock()
	return func() {
		ln.mu.Unlock()
		l.mu.Lock()
		if ln.users--; ln.users == 0 {
			delete(l.lanes, key)
		}
		l.mu.Unlock()
	}
}
