package admin

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"sigs.k8s.io/yaml"
)

// openAPIYAML is the OpenAPI 3.1 document of the admin API and /v1/me,
// written as YAML for people and served as JSON. TestOpenAPI* hold it to
// the routes and to real answers.
//
//go:embed openapi.yaml
var openAPIYAML []byte

func openAPIJSON() (json.RawMessage, error) {
	b, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("admin: the embedded OpenAPI document: %w", err)
	}
	return b, nil
}

// getOpenAPI is GET /admin/v1/openapi.json.
func (h *Handler) getOpenAPI(*http.Request, []byte) (int, any, *apiError) {
	return http.StatusOK, h.openapi, nil
}
