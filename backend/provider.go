package backend

import (
	"fmt"
	"sort"
	"strings"
)

// Provider is a preset: what one IdP's document fixes, so that an operator
// only writes what is theirs (URLs where the IdP has many tenants, client
// credentials, operator credentials). Every default can be overridden on the
// config.
type Provider struct {
	Name            string
	Title           string
	DefaultGrant    GrantType
	Grants          []GrantType
	ClientAuth      ClientAuth
	DefaultTokenURL string
	DefaultScopes   []string
	// RawBasic sends base64(client_id:client_secret) exactly as the IdP's
	// document shows, instead of RFC 6749 2.3.1's form-encoding of each part
	// (which changes secrets holding '+', '/', '%' or ':').
	RawBasic bool
	// SingleActiveToken: the IdP invalidates every older token of a client
	// when it issues a new one, so all roles of one config must share a token.
	SingleActiveToken bool
	// ScopesInAssertion: the jwt_bearer grant carries the scopes as the
	// assertion's space-separated scope claim, not as a form field (Google).
	ScopesInAssertion bool
	// ComposeUsername builds the username sent in the password grant.
	ComposeUsername func(Operator) (string, error)
}

// Operator holds resource-owner credentials for the password grant.
type Operator struct {
	Username    string
	Password    string
	AccessCode  string // MWI LBS operator only
	SecurityKey string // MWI LBS operator only
}

const ProviderOAuth2 = "oauth2"

var providers = map[string]*Provider{
	ProviderOAuth2: {
		Name:            ProviderOAuth2,
		Title:           "any standard OAuth2 / OIDC server",
		DefaultGrant:    GrantClientCredentials,
		Grants:          RoleGrants,
		ClientAuth:      ClientAuthBasic,
		ComposeUsername: plainUsername,
	},
	"mwi": {
		Name:            "mwi",
		Title:           "MWI IdentityServer (LBS operator, password grant)",
		DefaultGrant:    GrantPassword,
		Grants:          []GrantType{GrantPassword},
		ClientAuth:      ClientAuthBasic,
		DefaultTokenURL: "https://identity.magicwrighter.com/connect/token",
		RawBasic:        true,
		ComposeUsername: mwiUsername,
	},
	"myid": {
		Name:            "myid",
		Title:           "Intercede MyID (authorization code, interactive login)",
		DefaultGrant:    GrantAuthorizationCode,
		Grants:          []GrantType{GrantAuthorizationCode},
		ClientAuth:      ClientAuthPost,
		DefaultScopes:   []string{"myid.rest.basic"},
		ComposeUsername: plainUsername,
	},
	"screening-eagle": {
		Name:            "screening-eagle",
		Title:           "Screening Eagle ID (client credentials, Basic auth)",
		DefaultGrant:    GrantClientCredentials,
		Grants:          []GrantType{GrantClientCredentials, GrantAuthorizationCode},
		ClientAuth:      ClientAuthBasic,
		RawBasic:        true,
		ComposeUsername: plainUsername,
	},
	"microtek": {
		Name:              "microtek",
		Title:             "MicroTek (client credentials in the body, one live token per client)",
		DefaultGrant:      GrantClientCredentials,
		Grants:            []GrantType{GrantClientCredentials},
		ClientAuth:        ClientAuthPost,
		DefaultTokenURL:   "https://idp.mclabs.com/connect/token",
		DefaultScopes:     []string{"public-api"},
		SingleActiveToken: true,
		ComposeUsername:   plainUsername,
	},
}

// LookupProvider returns the preset of that name.
func LookupProvider(name string) (*Provider, error) {
	if p, ok := providers[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown provider %q: expected one of %s", name, strings.Join(ProviderNames(), ", "))
}

// ProviderNames lists the presets, sorted.
func ProviderNames() []string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Supports says whether the preset can perform grant g.
func (p *Provider) Supports(g GrantType) bool {
	for _, have := range p.Grants {
		if have == g {
			return true
		}
	}
	return false
}

func plainUsername(o Operator) (string, error) {
	if o.Username == "" || o.Password == "" {
		return "", fmt.Errorf("the password grant needs username and password on the config")
	}
	return o.Username, nil
}

// mwiUsername composes MWI's LBS operator login: lbso\<access_code>\<username>\<security_key>.
func mwiUsername(o Operator) (string, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"access_code", o.AccessCode}, {"username", o.Username},
		{"security_key", o.SecurityKey}, {"password", o.Password},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("provider mwi needs the LBS operator's %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct{ name, value string }{
		{"access_code", o.AccessCode}, {"username", o.Username},
	} {
		// A backslash inside a part would shift MWI's split of the login.
		if strings.Contains(f.value, `\`) {
			return "", fmt.Errorf("%s must not contain a backslash", f.name)
		}
	}
	if strings.Contains(o.SecurityKey, `\`) {
		return "", fmt.Errorf("security_key must not contain a backslash")
	}
	return `lbso\` + o.AccessCode + `\` + o.Username + `\` + o.SecurityKey, nil
}
