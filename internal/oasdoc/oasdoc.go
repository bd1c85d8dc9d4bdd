// Package oasdoc decodes the parts of Vault's OpenAPI document that the
// tests check: operations, their parameters and responses, and schemas.
package oasdoc

import "encoding/json"

// Doc is the part of an OpenAPI document the tests read.
type Doc struct {
	Paths      map[string]map[string]Operation // path -> method -> operation
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// Operation is the part of an operation the tests read.
type Operation struct {
	OperationID string `json:"operationId"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema struct {
				Ref string `json:"$ref"`
			} `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// Decode reads the operations of every path (a path item also holds
// a description and parameters, which are not operations).
func Decode(raw []byte) (Doc, error) {
	var top struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components json.RawMessage                       `json:"components"`
	}
	var doc Doc
	if err := json.Unmarshal(raw, &top); err != nil {
		return doc, err
	}
	if err := json.Unmarshal(top.Components, &doc.Components); err != nil {
		return doc, err
	}
	doc.Paths = map[string]map[string]Operation{}
	for path, item := range top.Paths {
		doc.Paths[path] = map[string]Operation{}
		for method, v := range item {
			if method != "get" && method != "post" && method != "delete" {
				continue
			}
			var op Operation
			if err := json.Unmarshal(v, &op); err != nil {
				return doc, err
			}
			doc.Paths[path][method] = op
		}
	}
	return doc, nil
}
