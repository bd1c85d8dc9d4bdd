package idptokens

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// testEnv is one mounted backend: the one test environment, shaped by
// options (envOption) rather than by copies of its setup.
type testEnv struct {
	t       *testing.T
	b       *idpBackend
	storage logical.Storage
	sys     *logical.StaticSystemView
	// clock is the backend's clock when the env was made withClock.
	clock *fakeclock.Clock
}

// envOption shapes a test environment before its backend is mounted.
type envOption func(*envConfig)

type envConfig struct {
	storage  logical.Storage
	logs     io.Writer
	clock    *fakeclock.Clock
	entities map[string]*logical.Entity
}

// onStorage mounts the backend on existing storage: a Vault restart, a
// plugin reload or a failover to another node.
func onStorage(s logical.Storage) envOption { return func(c *envConfig) { c.storage = s } }

// withLogs sends the backend's log, at trace level, to w.
func withLogs(w io.Writer) envOption { return func(c *envConfig) { c.logs = w } }

// withClock gives the backend a fake clock (its waits move it).
func withClock(clock *fakeclock.Clock) envOption { return func(c *envConfig) { c.clock = clock } }

// withEntities makes Vault know these identity entities, by ID.
func withEntities(entities ...*logical.Entity) envOption {
	return func(c *envConfig) {
		c.entities = map[string]*logical.Entity{}
		for _, e := range entities {
			c.entities[e.ID] = e
		}
	}
}

// entitySystemView answers EntityInfo from a table, as Vault does from its
// identity store.
type entitySystemView struct {
	*logical.StaticSystemView
	entities map[string]*logical.Entity
}

func (v entitySystemView) EntityInfo(id string) (*logical.Entity, error) { return v.entities[id], nil }

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	c := envConfig{storage: &logical.InmemStorage{}}
	for _, o := range opts {
		o(&c)
	}
	sys := &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	conf := logical.TestBackendConfig()
	conf.StorageView = c.storage
	conf.System = sys
	if c.entities != nil {
		conf.System = entitySystemView{StaticSystemView: sys, entities: c.entities}
	}
	if c.logs != nil {
		conf.Logger = hclog.New(&hclog.LoggerOptions{Name: "idp", Level: hclog.Trace, Output: c.logs})
	}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, b: b.(*idpBackend), storage: c.storage, sys: sys, clock: c.clock}
	if c.clock != nil {
		e.b.now, e.b.sleep = c.clock.Now, c.clock.Sleep
	}
	return e
}

// testT0 is when the fake clocks of the tests start.
var testT0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func (e *testEnv) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	return e.doAs("", op, path, data)
}

// doAs performs a request as Vault would for a token of entity ("": a
// token without an entity, such as root).
func (e *testEnv) doAs(entity string, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: e.storage, EntityID: entity,
	})
}

// okAs is ok for a token of entity.
func (e *testEnv) okAs(entity string, op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.doAs(entity, op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		e.t.Fatalf("%s %s as %s: err=%v resp=%v", op, path, entity, err, respErr(resp))
	}
	return resp
}

// failsAs is fails for a token of entity.
func (e *testEnv) failsAs(entity string, op logical.Operation, path string, data map[string]any, want string) string {
	e.t.Helper()
	resp, err := e.doAs(entity, op, path, data)
	if err != nil || resp == nil || !resp.IsError() || !strings.Contains(respErr(resp), want) {
		e.t.Fatalf("%s %s as %s: err=%v resp=%q, want a 400 containing %q", op, path, entity, err, respErr(resp), want)
	}
	return respErr(resp)
}

// ok performs a request that must succeed.
func (e *testEnv) ok(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		e.t.Fatalf("%s %s: err=%v resp=%v", op, path, err, respErr(resp))
	}
	return resp
}

// fails performs a request that must be refused with a 400-style error
// whose message contains want.
func (e *testEnv) fails(op logical.Operation, path string, data map[string]any, want string) string {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	msg := ""
	switch {
	case err != nil:
		msg = err.Error()
		if resp == nil || !resp.IsError() {
			e.t.Fatalf("%s %s: want a user error containing %q, got internal error %v", op, path, want, err)
		}
	case resp == nil || !resp.IsError():
		e.t.Fatalf("%s %s: want an error containing %q, got success %v", op, path, want, resp)
	default:
		msg = respErr(resp)
	}
	if !strings.Contains(msg, want) {
		e.t.Fatalf("%s %s: error %q does not contain %q", op, path, msg, want)
	}
	return msg
}

func respErr(resp *logical.Response) string {
	if resp == nil || resp.Data == nil {
		return ""
	}
	s, _ := resp.Data["error"].(string)
	return s
}

func (e *testEnv) creds(role string) *logical.Response {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "creds/"+role, nil)
}

// idp starts a fake IdP of the style on loopback.
func startIdP(t *testing.T, opts fakeidp.Options) (*fakeidp.Server, string) {
	t.Helper()
	idp := fakeidp.New(opts)
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	return idp, srv.URL + idp.TokenPath()
}

func leaseTTL(resp *logical.Response) time.Duration {
	return resp.Secret.TTL
}

// gate holds the first request to path until opened: a request in flight
// at the IdP while the test acts (a drop, a delete).
type gate struct {
	path    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(path string) *gate {
	return &gate{path: path, arrived: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == g.path {
			first := false
			g.once.Do(func() { first = true })
			if first {
				close(g.arrived)
				<-g.release
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (g *gate) open() { close(g.release) }

// stored is the raw storage entry at key, nil when there is none.
func (e *testEnv) stored(key string) []byte {
	e.t.Helper()
	entry, err := e.storage.Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	if entry == nil {
		return nil
	}
	return entry.Value
}
