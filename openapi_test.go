package idptokens

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/oasdoc"
)

// openAPIDoc is the document the framework generates for the backend, as
// Vault asks for it (a help request on the mount's root).
func openAPIDoc(t *testing.T, e *testEnv) oasdoc.Doc {
	t.Helper()
	e.sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "v1.21.0"}
	resp, err := e.do(logical.HelpOperation, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(resp.Data["openapi"])
	if err != nil {
		t.Fatal(err)
	}
	doc, err := oasdoc.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// Every operation is in the document with its id, its GET parameters in the
// query, and a declared response: 204, or 200 with a schema of fields (the
// callback's GET answers an HTML page).
func TestOpenAPIDocument(t *testing.T) {
	doc := openAPIDoc(t, newTestEnv(t))
	var got []string
	for path, ops := range doc.Paths {
		for method := range ops {
			got = append(got, method+" "+path)
		}
	}
	var want []string
	for _, w := range oasdoc.Operations {
		want = append(want, w.Method+" "+w.Path)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("operations in the document:\n%v\nwant:\n%v", got, want)
	}
	for _, w := range oasdoc.Operations {
		op := doc.Paths[w.Path][w.Method]
		if op.OperationID != w.ID {
			t.Errorf("%s %s: operationId %q, want %q", w.Method, w.Path, op.OperationID, w.ID)
		}
		var query []string
		for _, p := range op.Parameters {
			if p.In == "query" {
				query = append(query, p.Name)
			}
		}
		slices.Sort(query)
		if !slices.Equal(query, w.Query) {
			t.Errorf("%s %s: query parameters %v, want %v", w.Method, w.Path, query, w.Query)
		}
		if _, ok := op.Responses["204"]; ok {
			continue
		}
		ok200, has := op.Responses["200"]
		if !has {
			t.Errorf("%s %s: no 200 or 204 response declared", w.Method, w.Path)
			continue
		}
		if w.ID == "idp-read-callback" {
			continue
		}
		ref := ok200.Content["application/json"].Schema.Ref
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if len(doc.Components.Schemas[name].Properties) == 0 {
			t.Errorf("%s %s: the 200 response has no schema with fields (ref %q)", w.Method, w.Path, ref)
		}
	}
}

// responseCheck holds each answer to the schema its operation declares, and
// gathers the keys seen, so that a declared field no answer has is found.
type responseCheck struct {
	e    *testEnv
	seen map[string]map[string]bool // "op pattern" -> data keys seen
	path map[string]*framework.Path
}

// do performs a request that must succeed and checks its answer strictly:
// every key declared, every required key present; an operation declaring
// 204 answers nothing.
func (c *responseCheck) do(op logical.Operation, path string, data map[string]any) *logical.Response {
	t := c.e.t
	t.Helper()
	resp := c.e.ok(op, path, data)
	p := c.e.b.Route(path)
	if p == nil {
		t.Fatalf("no path matches %s", path)
	}
	declared := schema.GetResponseSchema(t, p, op)
	if _, noContent := p.Operations[op].Properties().Responses[http.StatusNoContent]; noContent {
		if resp != nil && len(resp.Data) > 0 {
			t.Errorf("%s %s declares 204 but answered %v", op, path, resp.Data)
		}
		return resp
	}
	key := string(op) + " " + p.Pattern
	if raw, ok := resp.Data[logical.HTTPContentType].(string); ok {
		// A raw body (HTML page, Prometheus text): its media type is declared.
		if !declaresMediaType(p.Operations[op].Properties().Responses, raw) {
			t.Errorf("%s %s answered %s, which its responses do not declare", op, path, raw)
		}
		c.path[key] = p
		// A raw JSON body (the JWKS): its members are the declared fields.
		if body, ok := resp.Data[logical.HTTPRawBody].([]byte); ok && strings.HasPrefix(raw, "application/json") {
			var members map[string]any
			if err := json.Unmarshal(body, &members); err != nil {
				t.Errorf("%s %s: the raw JSON body does not decode: %v", op, path, err)
			}
			if c.seen[key] == nil {
				c.seen[key] = map[string]bool{}
			}
			for k := range members {
				c.seen[key][k] = true
			}
		}
		return resp
	}
	schema.ValidateResponse(t, declared, resp, true)
	c.path[key] = p
	if c.seen[key] == nil {
		c.seen[key] = map[string]bool{}
	}
	if resp != nil {
		for k := range resp.Data {
			c.seen[key][k] = true
		}
	}
	return resp
}

// Every operation, driven through its handler, answers exactly the fields
// its OpenAPI response declares (required ones always, optional ones when
// they apply), so the document tells clients what they really get.
func TestResponsesMatchDeclaredSchemas(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	c := &responseCheck{e: a.testEnv, seen: map[string]map[string]bool{}, path: map[string]*framework.Path{}}
	seIdP, seURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: "se+/:%é", IDTokens: true})
	_, mtURL := startIdP(t, fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: "mt", ClientSecret: "mt+/:%é"})

	c.do(logical.CreateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": seURL, "client_id": "se", "client_secret": "se+/:%é"})
	c.do(logical.UpdateOperation, "config/se", map[string]any{"scopes": "openid,inspect"})
	c.do(logical.UpdateOperation, "config/mt", map[string]any{"provider": "microtek", "token_url": mtURL, "client_id": "mt", "client_secret": "mt+/:%é"})
	c.do(logical.CreateOperation, "roles/se", map[string]any{"config": "se"})
	c.do(logical.UpdateOperation, "roles/se", map[string]any{"extra_params": map[string]any{"audience": "api://x"}, "min_ttl": 60})
	c.do(logical.UpdateOperation, "roles/mt", map[string]any{"config": "mt"})
	c.do(logical.ReadOperation, "config/se", nil)
	c.do(logical.ReadOperation, "roles/se", nil)
	c.do(logical.ListOperation, "config/", nil)
	c.do(logical.ListOperation, "roles/", nil)

	// creds with and without an id_token, and the min_ttl query parameter.
	c.do(logical.ReadOperation, "creds/se", map[string]any{"min_ttl": 120})
	c.do(logical.ReadOperation, "creds/mt", nil)
	c.do(logical.ReadOperation, "token/se", map[string]any{"min_ttl": 120})
	c.do(logical.ReadOperation, "token/mt", nil)
	if seIdP.TokenRequests() != 1 {
		t.Fatalf("Screening Eagle saw %d token requests, want 1", seIdP.TokenRequests())
	}

	// The authorization code flow: auth-url, the CLI's callback write, the
	// browser's GET of the callback (a page, 200 and 400), then creds.
	u, _ := a.begin(a.role, nil)
	c.do(logical.UpdateOperation, "auth-url/"+a.role, nil)
	q := a.browse(u)
	c.do(logical.UpdateOperation, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")})
	q = a.login(a.role)
	c.do(logical.ReadOperation, "callback", map[string]any{"code": q.Get("code"), "state": q.Get("state")})
	c.do(logical.ReadOperation, "callback", map[string]any{"code": "x", "state": "unknown"})
	c.do(logical.ReadOperation, "creds/"+a.role, nil)

	c.do(logical.UpdateOperation, "config/se/rotate", map[string]any{"client_secret": "se-new+/:%é"})
	// Keys made in Vault: the public JWKS, the public keys, a rotation.
	c.do(logical.UpdateOperation, "config/se", map[string]any{"generate_key": true})
	c.do(logical.ReadOperation, "jwks/se", nil)
	c.do(logical.ReadOperation, "config/se/public-keys", nil)
	c.do(logical.UpdateOperation, "config/se/rotate-key", nil)
	c.do(logical.UpdateOperation, "creds/se/drop", nil)
	c.do(logical.UpdateOperation, "creds/mt/drop", nil) // shared by the config's roles

	c.do(logical.ReadOperation, "metrics", nil)
	c.do(logical.ReadOperation, "metrics", map[string]any{"format": "prometheus"})
	c.do(logical.UpdateOperation, "settings", map[string]any{"allowed_hosts": "127.0.0.1"})
	c.do(logical.ReadOperation, "settings", nil)

	c.do(logical.DeleteOperation, "roles/se", nil)
	c.do(logical.DeleteOperation, "config/se", nil)

	// A device login begun (with and without verification_uri_complete).
	deviceEnv(t, c.e, fakeidp.DeviceOptions{Complete: true, TokenTTL: 10 * time.Minute})
	c.do(logical.UpdateOperation, "device-code/tv", nil)
	// A caller's token exchange, on an environment of its own.
	ex := newExchangeEnv(t, fakeidp.TokenExchangeOptions{ValidSubject: func(s string) bool { return s != "" },
		Audience: []string{"orders"}, TokenTTL: 10 * time.Minute, IDToken: true})
	ex.ok(logical.UpdateOperation, "roles/orders", map[string]any{"config": "sts", "grant_type": "token_exchange", "audience": "orders"})
	exc := &responseCheck{e: ex.testEnv, seen: c.seen, path: c.path}
	exc.do(logical.UpdateOperation, "exchange/orders", map[string]any{"subject_token": "alice-token-123"})
	// creds of a token_exchange role whose subject is another role's token.
	ex.ok(logical.UpdateOperation, "roles/bybase", map[string]any{"config": "sts", "grant_type": "token_exchange", "audience": "orders", "subject_role": "base"})
	exc.do(logical.ReadOperation, "creds/bybase", nil)
	exc.do(logical.ReadOperation, "token/bybase", nil)
	// The people of a per_entity role, listed and one forgotten.
	people := newPeopleEnv(t, nil)
	people.loginAs(alice, "alice")
	pc := &responseCheck{e: people.testEnv, seen: c.seen, path: c.path}
	pc.do(logical.ListOperation, "logins/people/", nil)
	pc.do(logical.DeleteOperation, "logins/people/"+alice.ID, nil)

	// Every declared field was answered at least once.
	for key, p := range c.path {
		op := logical.Operation(strings.SplitN(key, " ", 2)[0])
		declared := schema.GetResponseSchema(t, p, op)
		for _, f := range slices.Sorted(maps.Keys(declared.Fields)) {
			if !c.seen[key][f] {
				t.Errorf("%s declares the response field %q, which no answer had", key, f)
			}
		}
	}
	// And every operation with a declared JSON answer was exercised.
	for _, p := range c.e.b.Paths {
		for op, h := range p.Operations {
			for _, r := range h.Properties().Responses[http.StatusOK] {
				if len(r.Fields) > 0 && c.path[string(op)+" "+p.Pattern] == nil {
					t.Errorf("%s %s: the test does not exercise it", op, p.Pattern)
				}
			}
		}
	}
}

// declaresMediaType: one of the responses has the media type of contentType
// (parameters such as charset aside).
func declaresMediaType(responses map[int][]framework.Response, contentType string) bool {
	media, _, _ := strings.Cut(contentType, ";")
	for _, rs := range responses {
		for _, r := range rs {
			declared, _, _ := strings.Cut(r.MediaType, ";")
			if declared != "" && declared == media {
				return true
			}
		}
	}
	return false
}

// Help is complete: every path has a synopsis, every operation a summary,
// every field and declared response field a description (vault path-help
// and the OpenAPI document show them).
func TestHelpComplete(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		if p.HelpSynopsis == "" {
			t.Errorf("%s has no HelpSynopsis", p.Pattern)
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("%s: field %s has no description", p.Pattern, name)
			}
		}
		for op, h := range p.Operations {
			props := h.Properties()
			if props.Summary == "" {
				t.Errorf("%s %s has no summary", op, p.Pattern)
			}
			if len(props.Responses) == 0 {
				t.Errorf("%s %s declares no response", op, p.Pattern)
			}
			for _, rs := range props.Responses {
				for _, r := range rs {
					if r.Description == "" {
						t.Errorf("%s %s: a response has no description", op, p.Pattern)
					}
					for name, f := range r.Fields {
						if f.Description == "" {
							t.Errorf("%s %s: response field %s has no description", op, p.Pattern, name)
						}
					}
				}
			}
		}
	}
}
