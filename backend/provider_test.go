package backend

import (
	"slices"
	"strings"
	"testing"
)

// The presets must say what each IdP's document fixes.

func TestProviderPresets(t *testing.T) {
	tests := []struct {
		name              string
		defaultGrant      GrantType
		grants            []GrantType
		clientAuth        ClientAuth
		tokenURL          string
		scopes            []string
		rawBasic          bool
		singleActiveToken bool
	}{
		{
			name: "oauth2", defaultGrant: GrantClientCredentials,
			grants:     []GrantType{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantJWTBearer, GrantTokenExchange, GrantDeviceCode},
			clientAuth: ClientAuthBasic,
		},
		{
			name: "google-service-account", defaultGrant: GrantJWTBearer,
			grants:     []GrantType{GrantJWTBearer},
			clientAuth: ClientAuthNone,
			tokenURL:   "https://oauth2.googleapis.com/token",
		},
		{
			name: "mwi", defaultGrant: GrantPassword,
			grants:     []GrantType{GrantPassword},
			clientAuth: ClientAuthBasic, rawBasic: true,
			tokenURL: "https://identity.magicwrighter.com/connect/token",
		},
		{
			name: "myid", defaultGrant: GrantAuthorizationCode,
			grants:     []GrantType{GrantAuthorizationCode},
			clientAuth: ClientAuthPost,
			scopes:     []string{"myid.rest.basic"},
		},
		{
			name: "screening-eagle", defaultGrant: GrantClientCredentials,
			grants:     []GrantType{GrantClientCredentials, GrantAuthorizationCode},
			clientAuth: ClientAuthBasic, rawBasic: true,
		},
		{
			name: "microtek", defaultGrant: GrantClientCredentials,
			grants:     []GrantType{GrantClientCredentials},
			clientAuth: ClientAuthPost,
			tokenURL:   "https://idp.mclabs.com/connect/token",
			scopes:     []string{"public-api"},
			// "Acquiring a new access token will invalidate any other token you own."
			singleActiveToken: true,
		},
	}
	if got, want := len(ProviderNames()), len(tests); got != want {
		t.Errorf("%d presets (%v), the table covers %d", got, ProviderNames(), want)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LookupProvider(tc.name)
			if err != nil {
				t.Fatalf("LookupProvider: %v", err)
			}
			if p.Name != tc.name {
				t.Errorf("Name = %q", p.Name)
			}
			if p.Title == "" {
				t.Error("no Title")
			}
			if p.DefaultGrant != tc.defaultGrant {
				t.Errorf("DefaultGrant = %q, want %q", p.DefaultGrant, tc.defaultGrant)
			}
			if !slices.Equal(p.Grants, tc.grants) {
				t.Errorf("Grants = %v, want %v", p.Grants, tc.grants)
			}
			if !p.Supports(p.DefaultGrant) {
				t.Errorf("does not support its own default grant %q", p.DefaultGrant)
			}
			for _, g := range []GrantType{GrantClientCredentials, GrantPassword, GrantAuthorizationCode} {
				if got, want := p.Supports(g), slices.Contains(tc.grants, g); got != want {
					t.Errorf("Supports(%q) = %v, want %v", g, got, want)
				}
			}
			if p.Supports(GrantRefreshToken) {
				t.Error("a preset lists refresh_token, which roles may not ask for")
			}
			if p.ClientAuth != tc.clientAuth {
				t.Errorf("ClientAuth = %q, want %q", p.ClientAuth, tc.clientAuth)
			}
			if p.DefaultTokenURL != tc.tokenURL {
				t.Errorf("DefaultTokenURL = %q, want %q", p.DefaultTokenURL, tc.tokenURL)
			}
			if p.DefaultTokenURL != "" {
				if err := CheckEndpointURL(p.DefaultTokenURL, false); err != nil {
					t.Errorf("DefaultTokenURL refused by CheckEndpointURL: %v", err)
				}
			}
			if !slices.Equal(p.DefaultScopes, tc.scopes) {
				t.Errorf("DefaultScopes = %q, want %q", p.DefaultScopes, tc.scopes)
			}
			if p.RawBasic != tc.rawBasic {
				t.Errorf("RawBasic = %v, want %v", p.RawBasic, tc.rawBasic)
			}
			if p.SingleActiveToken != tc.singleActiveToken {
				t.Errorf("SingleActiveToken = %v, want %v", p.SingleActiveToken, tc.singleActiveToken)
			}
			if p.ComposeUsername == nil {
				t.Error("no ComposeUsername")
			}
		})
	}
}

func TestLookupProviderUnknown(t *testing.T) {
	for _, name := range []string{"", "MWI", "okta", "screening_eagle"} {
		p, err := LookupProvider(name)
		if err == nil {
			t.Errorf("LookupProvider(%q) = %+v, want an error", name, p)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, `"`+name+`"`) {
			t.Errorf("LookupProvider(%q): %q does not quote the name asked for", name, msg)
		}
		for _, known := range []string{"microtek", "mwi", "myid", "oauth2", "screening-eagle"} {
			if !strings.Contains(msg, known) {
				t.Errorf("LookupProvider(%q): %q does not list %q", name, msg, known)
			}
		}
	}
}

func TestProviderNamesSorted(t *testing.T) {
	want := []string{"google-service-account", "microtek", "mwi", "myid", "oauth2", "screening-eagle"}
	if got := ProviderNames(); !slices.Equal(got, want) {
		t.Errorf("ProviderNames() = %v, want %v", got, want)
	}
}

func TestMWIUsername(t *testing.T) {
	full := Operator{AccessCode: "11112222", Username: "testuser", SecurityKey: "testseckey", Password: "testpassword"}
	tests := []struct {
		name    string
		edit    func(*Operator)
		want    string   // composed username on success
		wantErr []string // substrings of the error
		notErr  []string // must not appear in the error
	}{
		{
			name: "document example",
			edit: func(*Operator) {},
			want: `lbso\11112222\testuser\testseckey`,
		},
		{
			name: "characters other than backslash kept",
			edit: func(o *Operator) { o.Username, o.SecurityKey = "jane.doe@example", "k/+:= %" },
			want: `lbso\11112222\jane.doe@example\k/+:= %`,
		},
		{name: "no access_code", edit: func(o *Operator) { o.AccessCode = "" }, wantErr: []string{"mwi", "access_code"}, notErr: []string{"security_key", "password"}},
		{name: "no username", edit: func(o *Operator) { o.Username = "" }, wantErr: []string{"username"}, notErr: []string{"access_code", "security_key", "password"}},
		{name: "no security_key", edit: func(o *Operator) { o.SecurityKey = "" }, wantErr: []string{"security_key"}, notErr: []string{"access_code", "password"}},
		{name: "no password", edit: func(o *Operator) { o.Password = "" }, wantErr: []string{"password"}, notErr: []string{"access_code", "security_key"}},
		{
			name:    "nothing",
			edit:    func(o *Operator) { *o = Operator{} },
			wantErr: []string{"access_code", "username", "security_key", "password"},
		},
		{
			name: "backslash in access_code", edit: func(o *Operator) { o.AccessCode = `1111\2222` },
			wantErr: []string{"access_code", "backslash"},
		},
		{
			name: "backslash in username", edit: func(o *Operator) { o.Username = `DOMAIN\testuser` },
			wantErr: []string{"username", "backslash"},
		},
		{
			name: "backslash in security_key", edit: func(o *Operator) { o.SecurityKey = `sec\key` },
			wantErr: []string{"security_key", "backslash"}, notErr: []string{`sec\key`},
		},
		{
			name: "backslash in password is fine", edit: func(o *Operator) { o.Password = `pa\ss` },
			want: `lbso\11112222\testuser\testseckey`,
		},
	}
	p, err := LookupProvider("mwi")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := full
			tc.edit(&o)
			got, err := p.ComposeUsername(o)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ComposeUsername: %v", err)
				}
				if got != tc.want {
					t.Errorf("ComposeUsername = %q, want %q", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ComposeUsername = %q, want an error", got)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			for _, s := range tc.notErr {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q names %q", err, s)
				}
			}
		})
	}
}

func TestPlainUsername(t *testing.T) {
	for _, name := range []string{"oauth2", "myid", "screening-eagle", "microtek"} {
		p, err := LookupProvider(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.ComposeUsername(Operator{Username: `DOMAIN\jane`, Password: "pw", AccessCode: "ignored", SecurityKey: "ignored"})
		if err != nil || got != `DOMAIN\jane` {
			t.Errorf("%s: ComposeUsername = %q, %v; want the username unchanged", name, got, err)
		}
		for _, o := range []Operator{{Password: "pw"}, {Username: "jane"}} {
			if got, err := p.ComposeUsername(o); err == nil {
				t.Errorf("%s: ComposeUsername(%+v) = %q, want an error", name, o, got)
			} else if strings.Contains(err.Error(), "pw") {
				t.Errorf("%s: error %q quotes the password", name, err)
			}
		}
	}
}
