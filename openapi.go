// What Vault's OpenAPI document (sys/internal/specs/openapi) says about the
// engine: one operation-id prefix, and the response of every operation. The
// fields listed here are the keys the handlers return; openapi_test.go holds
// each handler to them.

package idptokens

import (
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
)

// operationPrefix begins every operation id (idp-read-credentials, ...).
const operationPrefix = "idp"

// ok200 is a 200 answer with the given JSON data fields.
func ok200(desc string, fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {{Description: desc, Fields: fields}}}
}

// noContent is the answer of a write or delete that returns no data: 204,
// or 200 when it carries warnings (what the write did to tokens or logins),
// which Vault answers with that status.
func noContent() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusNoContent: {{Description: "No content."}},
		http.StatusOK:        {{Description: "No data, only warnings: what the request did to tokens or logins, or what it could not do."}},
	}
}

// listResponses is the answer of a LIST.
func listResponses(what string) map[int][]framework.Response {
	return ok200("The names of the "+what+".", map[string]*framework.FieldSchema{
		"keys": {Type: framework.TypeStringSlice, Description: "Names of the " + what + ".", Required: true},
	})
}

func respString(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: desc, Required: true}
}

func respBool(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeBool, Description: desc, Required: true}
}

func respList(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeStringSlice, Description: desc, Required: true}
}

func respSeconds(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: desc + " (seconds).", Required: true}
}

// respSecondsOrUnset is a duration whose 0 means none is set.
func respSecondsOrUnset(desc string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: desc + " (seconds; 0: unset).", Required: true}
}
