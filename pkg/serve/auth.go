package serve

// The key check of every route (from the headers, before any body byte is
// read) and the admin API behind it.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/admin"
	"github.com/llmctl/llmctl/pkg/serve/protocol"
)

// authenticate checks the bearer key. Bad keys are 401; a store failure 503.
func (g *Gateway) authenticate(r *http.Request, st *reqState) (billing.Principal, *apiError) {
	return g.authenticateKey(r, st, protocol.BearerKey(r.Header))
}

// authenticateKey checks key, read from the headers by the route's rules.
func (g *Gateway) authenticateKey(r *http.Request, st *reqState, key string) (billing.Principal, *apiError) {
	if key == "" {
		return billing.Principal{}, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication,
			Code: "invalid_api_key", Message: "missing API key: send Authorization: Bearer sk-llm-..."}
	}
	p, err := g.opts.Auth.Authenticate(r.Context(), key)
	if err != nil {
		msg := ""
		switch {
		case errors.Is(err, billing.ErrRevoked):
			msg = "API key revoked"
		case errors.Is(err, billing.ErrExpired):
			msg = "API key expired"
		case errors.Is(err, billing.ErrSuspended): // before ErrInvalidKey, which it also matches
			msg = "this API key's account is suspended; ask the operator"
		case errors.Is(err, billing.ErrInvalidKey):
			msg = "invalid API key"
		default:
			g.log.Error("authenticate", "request_id", st.id, "err", err)
			return billing.Principal{}, &apiError{Status: http.StatusServiceUnavailable, Type: typeServer,
				Code: "auth_unavailable", Message: "could not verify the API key; try again"}
		}
		return billing.Principal{}, &apiError{Status: http.StatusUnauthorized, Type: typeAuthentication,
			Code: "invalid_api_key", Message: msg}
	}
	st.tenant, st.keyID = p.TenantID, p.KeyID
	return p, nil
}

// adminAPI checks the caller like inference does (key from the headers
// before any body byte is read; then its role; then the rate limits on the
// key's and tenant's buckets, model "admin") and hands the read body to the
// admin handler with the caller in the context.
func (g *Gateway) adminAPI(w http.ResponseWriter, r *http.Request, st *reqState) {
	p, aerr := g.authenticate(r, st)
	if aerr == nil && !p.IsAdmin() {
		aerr = &apiError{Status: http.StatusForbidden, Type: typePermission, Code: "permission_denied",
			Message: "this API key may not use the admin API; use an admin key"}
	}
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	s, aerr := g.admit(w, r, st, p, "admin", 0)
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	defer s.finish(billing.Usage{})
	body, release, aerr := g.readBody(w, r, g.opts.MaxBodyBytes)
	defer release()
	if aerr != nil {
		g.refuseUnread(w, st, aerr)
		return
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	// The handler's audit records carry the request id this response has.
	r.Header.Set("X-Request-Id", st.id)
	g.opts.Admin.ServeHTTP(w, r.WithContext(admin.WithCaller(r.Context(), p)))
}

// admitError answers a refusal or failure of the Admitter.
func (g *Gateway) admitError(r *http.Request, st *reqState, err error) *apiError {
	var le *billing.LimitError
	if errors.As(err, &le) {
		h := le.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		if le.TooLarge {
			// Never admissible: a non-retryable 400 (official clients
			// retry every 429), with no Retry-After to wait for.
			return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest,
				Code: "request_too_large", Param: "max_tokens", Message: le.Message, Header: h}
		}
		secs := int64((le.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
		return &apiError{Status: http.StatusTooManyRequests, Type: typeRateLimit,
			Code: "rate_limit_exceeded", Message: le.Message, Header: h}
	}
	if r.Context().Err() != nil {
		return requestEnded(r)
	}
	g.log.Error("rate limiter", "request_id", st.id, "err", err)
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: "limiter_unavailable",
		Message: "rate limiter unavailable; try again"}
}
