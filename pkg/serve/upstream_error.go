package serve

import (
	"encoding/json"
	"fmt"
)

// upstreamRejected is the client's answer when a backend refused the request
// itself (a 4xx): the backend's own message, param and code pass through, so
// a client learns which field the embedded engine or a remote server refused,
// in the same shape as the gateway's own refusals.
func upstreamRejected(be *BackendError) *apiError {
	var v struct {
		Error struct {
			Message string `json:"message"`
			Param   string `json:"param"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	// A body that is not an OpenAI-shaped error keeps the zero values: the
	// answer then says only the status.
	_ = json.Unmarshal(be.Body, &v)
	e := &apiError{Status: be.Status, Type: typeInvalidRequest, Code: v.Error.Code, Param: v.Error.Param, Message: v.Error.Message}
	if e.Code == "" {
		e.Code = "invalid_request"
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("the backend rejected the request with status %d", be.Status)
	}
	return e
}
