//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/oasdoc"
)

// apiCall is how to call one of the plugin's operations (oasdoc.Operations
// says what the document must declare of it) for real.
type apiCall struct {
	id       string // the operation's id
	call     string // the request made: its path under /v1/ (with any query)
	body     map[string]any
	optional []string // declared response fields this call may lack
}

// TestOpenAPI reads sys/internal/specs/openapi from a real Vault with the
// plugin mounted at idp/ and checks every path of the plugin: the operation
// ids, GET parameters in the query, and a response schema per operation;
// then calls each operation through Vault's HTTP API and compares the keys
// of the data it answers with the fields its response declares.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	v := StartDevVault(t)
	se := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se-api", ClientSecret: seSecret, IDTokens: true})
	myid := StartFakeIdP(t, fakeidp.Options{Style: fakeidp.StyleMyID, ClientID: "myid-api", ClientSecret: "myid+api/secret:%41é",
		RedirectURIs: []string{v.callbackURL()}})
	v.Write("idp/config/myid", "provider=myid", "token_url="+myid.TokenURL(), "auth_url="+myid.URL+"/connect/authorize",
		"client_id=myid-api", "client_secret=myid+api/secret:%41é", "redirect_uris="+v.callbackURL())
	v.Write("idp/roles/myid", "config=myid")

	// A login's state and code (from the IdP's redirect), for the callback write.
	loginURL, state := v.authURL("myid")
	code := loginCode(t, loginURL)

	// A device login, and a token exchange of the caller's subject token.
	deviceIdP := fakeidp.NewDevice(fakeidp.DeviceOptions{ClientID: "tv", ClientSecret: "tv-secret", Scope: "tv.watch", Interval: 5, Complete: true})
	device := httptest.NewServer(deviceIdP)
	t.Cleanup(device.Close)
	v.Write("idp/config/tv", "token_url="+device.URL+"/token", "device_authorization_url="+device.URL+"/device", "client_id=tv", "client_secret=tv-secret")
	v.Write("idp/roles/tv", "config=tv", "grant_type=device_code", "scopes=tv.watch")
	sts := httptest.NewServer(fakeidp.NewTokenExchange(fakeidp.TokenExchangeOptions{ClientID: "sts", ClientSecret: "sts-secret",
		ValidSubject: func(s string) bool { return s == "subject-token-1" }, Audience: []string{"orders"}}))
	t.Cleanup(sts.Close)
	v.Write("idp/config/sts", "token_url="+sts.URL+"/token", "client_id=sts", "client_secret=sts-secret")
	v.Write("idp/roles/orders", "config=sts", "grant_type=token_exchange", "audience=orders")

	// A person's own device login, for the operator's logins paths.
	ppl := startPeople(t, v, "ann")
	v.Write("idp/roles/tv-people", "config=tv", "grant_type=device_code", "scopes=tv.watch", "per_entity=true")
	var dc Secret
	v.JSONAs(ppl.tokens["ann"], &dc, "write", "-f", "idp/device-code/tv-people")
	deviceIdP.Approve(dc.String("user_code"))
	if !eventually(60*time.Second, 250*time.Millisecond, func() bool { _, _, ok := ppl.read(t, v, "ann", "idp/creds/tv-people"); return ok }) {
		t.Fatal("ann's device login gave her no token within 60 s")
	}

	// A config whose key is made in Vault, for the JWKS and key paths.
	v.Write("idp/config/keys", "token_url="+se.TokenURL(), "client_id=keys-api", "client_auth=private_key_jwt", "generate_key=true")

	calls := []apiCall{
		{"idp-write-config", "idp/config/se", map[string]any{"provider": "screening-eagle", "token_url": se.TokenURL(), "client_id": "se-api", "client_secret": seSecret, "scopes": "openid,inspect"}, nil},
		{"idp-write-role", "idp/roles/se", map[string]any{"config": "se", "min_ttl": "1m"}, nil},
		{"idp-read-config", "idp/config/se", nil, nil},
		{"idp-read-role", "idp/roles/se", nil, nil},
		{"idp-list-configs", "idp/config/?list=true", nil, nil},
		{"idp-list-roles", "idp/roles/?list=true", nil, nil},
		{"idp-read-credentials", "idp/creds/se?min_ttl=120", nil, []string{"issued_token_type"}},
		{"idp-write-device-code", "idp/device-code/tv", map[string]any{}, nil},
		{"idp-write-exchange", "idp/exchange/orders", map[string]any{"subject_token": "subject-token-1"}, []string{"id_token"}},
		{"idp-rotate-config", "idp/config/se/rotate", map[string]any{"client_secret": "se-rotated+/:%41"}, nil},
		{"idp-drop-credentials", "idp/creds/se/drop", map[string]any{}, []string{"shared_by"}},
		{"idp-write-auth-url", "idp/auth-url/myid", map[string]any{}, nil},
		{"idp-write-callback", "idp/callback", map[string]any{"code": code, "state": state}, nil},
		{"idp-read-callback", "idp/callback?state=unknown&code=x", nil, nil},
		{"idp-read-metrics", "idp/metrics", nil, nil},
		{"idp-write-settings", "idp/settings", map[string]any{"allowed_hosts": "127.0.0.1"}, nil},
		{"idp-read-settings", "idp/settings", nil, nil},
		{"idp-read-token", "idp/token/se?min_ttl=120", nil, []string{"issued_token_type"}},
		{"idp-list-logins", "idp/logins/tv-people/?list=true", nil, nil},
		{"idp-delete-login", "idp/logins/tv-people/" + ppl.entities["ann"], nil, nil},
		{"idp-read-jwks", "idp/jwks/keys", nil, nil},
		{"idp-read-public-keys", "idp/config/keys/public-keys", nil, nil},
		{"idp-rotate-key", "idp/config/keys/rotate-key", map[string]any{}, nil},
		{"idp-delete-role", "idp/roles/se", nil, nil},
		{"idp-delete-config", "idp/config/se", nil, nil},
	}

	status, raw, _ := vaultHTTP(t, v, v.Token, http.MethodGet, "sys/internal/specs/openapi", nil)
	if status != http.StatusOK {
		t.Fatalf("sys/internal/specs/openapi answered %d: %s", status, raw)
	}
	doc, err := oasdoc.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}

	// Every operation of the plugin is in the table, and the other way round.
	var inDoc, inTable []string
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/idp/") {
			continue
		}
		for method := range item {
			inDoc = append(inDoc, method+" "+path)
		}
	}
	ops := map[string]oasdoc.PluginOperation{}
	for _, op := range oasdoc.Operations {
		inTable = append(inTable, op.Method+" /idp"+op.Path)
		ops[op.ID] = op
	}
	var called []string
	for _, c := range calls {
		called = append(called, c.id)
	}
	if want := slices.Sorted(maps.Keys(ops)); !slices.Equal(slices.Sorted(slices.Values(called)), want) {
		t.Errorf("the test calls %v, want each of %v once", called, want)
	}
	slices.Sort(inDoc)
	slices.Sort(inTable)
	if !slices.Equal(inDoc, inTable) {
		t.Errorf("the plugin's operations in Vault's OpenAPI document:\n%v\nthe test's:\n%v", inDoc, inTable)
	}

	for _, c := range calls {
		op := ops[c.id]
		path, method := "/idp"+op.Path, op.Method
		o, found := doc.Paths[path][method]
		if !found {
			t.Errorf("%s %s is not in the document", method, path)
			continue
		}
		if o.OperationID != c.id {
			t.Errorf("%s %s: operationId %q, want %q", method, path, o.OperationID, c.id)
		}
		var query []string
		for _, p := range o.Parameters {
			if p.In == "query" {
				query = append(query, p.Name)
			}
		}
		slices.Sort(query)
		if !slices.Equal(query, op.Query) {
			t.Errorf("%s %s: query parameters %v, want %v", method, path, query, op.Query)
		}

		// The real answer, through Vault.
		token := v.Token
		if c.id == "idp-read-callback" || c.id == "idp-read-jwks" {
			token = "" // the browser and the IdP hold no Vault token
		}
		status, body, contentType := vaultHTTP(t, v, token, strings.ToUpper(method), c.call, c.body)
		if _, declares204 := o.Responses["204"]; declares204 {
			// No data: 204, or 200 with warnings only, if declared.
			var warned struct {
				Data     map[string]any `json:"data"`
				Warnings []string       `json:"warnings"`
			}
			_, declares200 := o.Responses["200"]
			onlyWarnings := status == http.StatusOK && declares200 && json.Unmarshal(body, &warned) == nil && warned.Data == nil && len(warned.Warnings) > 0
			if status != http.StatusNoContent && !onlyWarnings {
				t.Errorf("%s %s declares 204 (or 200 with warnings only); Vault answered %d: %s", method, c.call, status, body)
			}
			continue
		}
		if c.id == "idp-read-callback" {
			if _, declares := o.Responses["400"]; status != http.StatusBadRequest || !declares || !strings.HasPrefix(contentType, "text/html") {
				t.Errorf("callback GET with an unknown state: %d %s; want the declared 400 HTML page", status, contentType)
			}
			continue
		}
		if status != http.StatusOK {
			t.Errorf("%s %s answered %d: %s", method, c.call, status, body)
			continue
		}
		content, hasJSON := o.Responses["200"].Content["application/json"]
		name := strings.TrimPrefix(content.Schema.Ref, "#/components/schemas/")
		if name == "" {
			// Vault v1.21.0 drops the $ref of a plugin's response schema on
			// its way from the plugin (the component itself arrives); the
			// framework names it after the operation id.
			name = titleCase(c.id) + "Response"
		}
		declared := doc.Components.Schemas[name].Properties
		if !hasJSON || len(declared) == 0 {
			t.Errorf("%s %s: no JSON response with fields declared (schema %q)", method, path, name)
			continue
		}
		var answer struct {
			Data map[string]any `json:"data"`
		}
		if c.id == "idp-read-jwks" {
			// A raw body, as the IdP reads it: its fields are the document's.
			err = json.Unmarshal(body, &answer.Data)
		} else {
			err = json.Unmarshal(body, &answer)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", method, c.call, err)
		}
		for k := range answer.Data {
			if _, ok := declared[k]; !ok {
				t.Errorf("%s %s answered the field %q, which its response does not declare", method, c.call, k)
			}
		}
		for k := range declared {
			if _, ok := answer.Data[k]; !ok && !slices.Contains(c.optional, k) {
				t.Errorf("%s %s declares the response field %q, which the answer lacks", method, c.call, k)
			}
		}
	}

	// format=prometheus is the text format, as declared in the schema.
	if status, _, ct := vaultHTTP(t, v, v.Token, http.MethodGet, "idp/metrics?format=prometheus", nil); status != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics?format=prometheus: %d %s", status, ct)
	}
}

// vaultHTTP calls Vault's HTTP API and returns the status, body and
// content type.
func vaultHTTP(t *testing.T, v *Vault, token, method, path string, body map[string]any) (int, []byte, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.Addr+"/v1/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header.Get("Content-Type")
}

// titleCase is the framework's name of an operation's schemas:
// idp-read-credentials -> IdpReadCredentials.
func titleCase(id string) string {
	var b strings.Builder
	for _, w := range strings.Split(id, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}
