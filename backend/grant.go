package backend

// GrantType is an OAuth2 grant (RFC 6749 section 4 and 6).
type GrantType string

const (
	GrantClientCredentials GrantType = "client_credentials"
	GrantPassword          GrantType = "password"
	GrantAuthorizationCode GrantType = "authorization_code"
	GrantRefreshToken      GrantType = "refresh_token"
)

// RoleGrants are the grants a role may name; refresh_token is used by the
// engine itself, never asked for directly. The extension grants are in
// grant_jwtbearer.go, grant_exchange.go and grant_device.go.
var RoleGrants = []GrantType{GrantClientCredentials, GrantPassword, GrantAuthorizationCode, GrantJWTBearer, GrantTokenExchange, GrantDeviceCode}

// Wire is the grant_type value sent to the token endpoint: the role's name
// for RFC 6749's grants, the registered URN for the extension grants.
func (g GrantType) Wire() string {
	if urn, ok := grantURNs[g]; ok {
		return urn
	}
	return string(g)
}

// ParseGrant accepts one of RoleGrants.
func ParseGrant(s string) (GrantType, bool) {
	for _, g := range RoleGrants {
		if string(g) == s {
			return g, true
		}
	}
	return "", false
}
