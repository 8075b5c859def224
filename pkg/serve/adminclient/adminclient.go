// Package adminclient is a small typed HTTP client for llmctl serve's admin
// API (/admin/v1/, docs/admin-api.md) and GET /v1/me. The CLI uses it for
// `--server`: every call takes a context, answers in OpenAI's error shape
// become *Error values carrying the status, code and message, and the API
// key is only ever put in the Authorization header, never in an error or a
// log line.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one call when the caller's http.Client has none.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds how much of an answer is read: admin answers are small,
// a server that streams something else must not exhaust memory.
const maxAnswer = 32 << 20

// Client calls one llmctl server with one API key.
type Client struct {
	base *url.URL
	key  string
	hc   *http.Client
}

// New returns a client for server (http:// or https://, optionally with a
// path prefix) authenticating with apiKey. hc nil uses a client with
// DefaultTimeout.
func New(server, apiKey string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL such as https://llm.example.com or http://127.0.0.1:8080", server)
	}
	if strings.TrimSpace(apiKey) == "" {
		return nil, errors.New("an API key is required")
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return &Client{base: u, key: strings.TrimSpace(apiKey), hc: hc}, nil
}

// Server is the base URL, for messages.
func (c *Client) Server() string { return c.base.String() }

// Error is an answer other than 2xx. Its message is the server's, in the
// user's terms: `tenant "x" not found (404)`.
type Error struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d)", e.Message, e.Status)
}

// IsStatus reports whether err is an *Error with this HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// do sends one request and decodes a 2xx answer into out (if not nil). It
// returns the status so callers can tell 201 from 200.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	u := *c.base
	u.Path += path
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer from %s: %w", c.Server(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, c.answerError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s did not answer %s %s with the admin API's JSON (is it an llmctl server?)", c.Server(), method, path)
		}
	}
	return resp.StatusCode, nil
}

// transportError says what went wrong reaching the server in the user's
// terms. *url.Error carries the URL (never the key, which is a header).
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("request to %s: %w", c.Server(), ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("the llmctl server at %s did not answer in time", c.Server())
		}
		err = ue.Err
	}
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return fmt.Errorf("cannot reach the llmctl server at %s: unknown host %q", c.Server(), de.Name)
	case errors.As(err, &oe) && oe.Op == "dial":
		return fmt.Errorf("cannot reach the llmctl server at %s: %w", c.Server(), oe.Err)
	}
	return fmt.Errorf("cannot reach the llmctl server at %s: %w", c.Server(), err)
}

// answerError turns a non-2xx answer into an *Error: OpenAI's shape when the
// body has it, else the HTTP status (a proxy's page, or not llmctl at all).
func (c *Client) answerError(resp *http.Response, b []byte) error {
	var env struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil && env.Error.Message != "" {
		e := &Error{Status: resp.StatusCode, Type: env.Error.Type, Message: env.Error.Message}
		if env.Error.Param != nil {
			e.Param = *env.Error.Param
		}
		if env.Error.Code != nil {
			e.Code = *env.Error.Code
		}
		return e
	}
	msg := fmt.Sprintf("%s answered %s without an llmctl error (is it an llmctl server with the admin API on?)", c.Server(), resp.Status)
	return &Error{Status: resp.StatusCode, Message: msg}
}

// Limits are rates stored on a tenant or key; 0 = none stored.
type Limits struct {
	RPM            int64 `json:"rpm"`
	TPM            int64 `json:"tpm"`
	MaxConcurrency int64 `json:"max_concurrency"`
	// BatchRPM and BatchTPM limit batch lines, apart from RPM and TPM.
	BatchRPM int64 `json:"batch_rpm"`
	BatchTPM int64 `json:"batch_tpm"`
}

// Tenant is a customer account.
type Tenant struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"` // active | suspended
	Limits
	CreatedAt   time.Time  `json:"created_at"`
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
}

// Key is an API key's record, never its secret.
type Key struct {
	ID     string   `json:"id"`
	Tenant string   `json:"tenant"`
	Name   string   `json:"name,omitempty"`
	Role   string   `json:"role"`
	Status string   `json:"status"` // active | revoked | expired
	Models []string `json:"models"` // [] = every model
	Limits
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Priority  string     `json:"priority,omitempty"` // high | normal | low; "" = not set
}

// CreatedKey is a new key with its secret, shown this once.
type CreatedKey struct {
	Key
	Secret string `json:"key"`
}

// NewKey is what CreateKey sends; zero fields are left to the server.
type NewKey struct {
	Name      string   `json:"name,omitempty"`
	Role      string   `json:"role,omitempty"`
	Models    []string `json:"models,omitempty"`
	ExpiresIn string   `json:"expires_in,omitempty"`
	Priority  string   `json:"priority,omitempty"`
	Limits
}

// Money is an amount as a decimal string and as micro-units.
type Money struct {
	Amount       string `json:"amount"`
	AmountMicros int64  `json:"amount_micros"`
}

// Balance is a tenant's account.
type Balance struct {
	Tenant          string `json:"tenant,omitempty"`
	Balance         string `json:"balance"`
	BalanceMicros   int64  `json:"balance_micros"`
	Reserved        string `json:"reserved"`
	ReservedMicros  int64  `json:"reserved_micros"`
	Available       string `json:"available"`
	AvailableMicros int64  `json:"available_micros"`
}

// Entry is a ledger entry written by a credit.
type Entry struct {
	Tenant           string `json:"tenant"`
	Kind             string `json:"kind"`
	Amount           string `json:"amount"`
	AmountMicros     int64  `json:"amount_micros"`
	Model            string `json:"model,omitempty"` // a charged request's model and tokens
	PromptTokens     int64  `json:"prompt_tokens,omitempty"`
	CompletionTokens int64  `json:"completion_tokens,omitempty"`
	// The request's key id, OpenAI user field and cached prompt tokens.
	KeyID              string `json:"key_id,omitempty"`
	EndUser            string `json:"end_user,omitempty"`
	CachedPromptTokens int64  `json:"cached_prompt_tokens,omitempty"`
	// BatchID is the batch whose line the entry charges; "" otherwise.
	BatchID        string    `json:"batch_id,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	IdempotencyKey string    `json:"idempotency_key"`
	CreatedAt      time.Time `json:"created_at"`
}

// AuditRecord is one admin write.
type AuditRecord struct {
	ID        int64           `json:"id"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// AuditQuery filters Audit; zero fields are not sent.
type AuditQuery struct {
	Since, Until time.Time
	Limit        int
	Before       int64
}

// Spend is what was charged over a window.
type Spend struct {
	Money
	Requests int64 `json:"requests"`
}

// Me is GET /v1/me: the calling key, its limits and its tenant's money.
type Me struct {
	Tenant    string     `json:"tenant"`
	TenantID  string     `json:"tenant_id"`
	KeyID     string     `json:"key_id"`
	Role      string     `json:"role"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	Limits    struct {
		Key    Limits `json:"key"`
		Tenant Limits `json:"tenant"`
	} `json:"limits"`
	Billing *struct {
		Balance
		Spend24h Spend `json:"spend_24h"`
		Spend30d Spend `json:"spend_30d"`
		// The part of the spend that batch lines were charged.
		BatchSpend24h Spend `json:"batch_spend_24h"`
		BatchSpend30d Spend `json:"batch_spend_30d"`
	} `json:"billing"`
	BillingMessage string `json:"billing_message,omitempty"`
}

type list[T any] struct {
	Data       []T   `json:"data"`
	NextBefore int64 `json:"next_before,omitempty"`
}

func esc(s string) string { return url.PathEscape(s) }

// window is the since/until query of the listing endpoints; a zero time is
// not sent.
func window(since, until time.Time) url.Values {
	v := url.Values{}
	if !since.IsZero() {
		v.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		v.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
	return v
}

// CreateTenant is POST /admin/v1/tenants.
func (c *Client) CreateTenant(ctx context.Context, name string, l Limits) (Tenant, error) {
	var t Tenant
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/tenants", nil, struct {
		Name string `json:"name"`
		Limits
	}{name, l}, &t)
	return t, err
}

// ListTenants is GET /admin/v1/tenants, by name.
func (c *Client) ListTenants(ctx context.Context) ([]Tenant, error) {
	var l list[Tenant]
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants", nil, nil, &l)
	return l.Data, err
}

// GetTenant is GET /admin/v1/tenants/{name}; name may be an id.
func (c *Client) GetTenant(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(name), nil, nil, &t)
	return t, err
}

// SetTenantLimits replaces all of a tenant's limits (PATCH).
func (c *Client) SetTenantLimits(ctx context.Context, name string, l Limits) (Tenant, error) {
	var t Tenant
	_, err := c.do(ctx, http.MethodPatch, "/admin/v1/tenants/"+esc(name), nil, l, &t)
	return t, err
}

// SuspendTenant is DELETE /admin/v1/tenants/{name}: its keys stop working.
func (c *Client) SuspendTenant(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	_, err := c.do(ctx, http.MethodDelete, "/admin/v1/tenants/"+esc(name), nil, nil, &t)
	return t, err
}

// ResumeTenant is POST /admin/v1/tenants/{name}/resume.
func (c *Client) ResumeTenant(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/tenants/"+esc(name)+"/resume", nil, nil, &t)
	return t, err
}

// CreateKey is POST /admin/v1/tenants/{name}/keys; the answer holds the
// secret, which the server never shows again.
func (c *Client) CreateKey(ctx context.Context, tenant string, k NewKey) (CreatedKey, error) {
	var ck CreatedKey
	_, err := c.do(ctx, http.MethodPost, "/admin/v1/tenants/"+esc(tenant)+"/keys", nil, k, &ck)
	return ck, err
}

// ListKeys is GET /admin/v1/tenants/{name}/keys.
func (c *Client) ListKeys(ctx context.Context, tenant string) ([]Key, error) {
	var l list[Key]
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/keys", nil, nil, &l)
	return l.Data, err
}

// SetKeyLimits replaces all of a key's limits (PATCH).
func (c *Client) SetKeyLimits(ctx context.Context, id string, l Limits) (Key, error) {
	var k Key
	_, err := c.do(ctx, http.MethodPatch, "/admin/v1/keys/"+esc(id), nil, l, &k)
	return k, err
}

// RevokeKey is DELETE /admin/v1/keys/{id}; revoking twice is no error.
func (c *Client) RevokeKey(ctx context.Context, id string) (Key, error) {
	var k Key
	_, err := c.do(ctx, http.MethodDelete, "/admin/v1/keys/"+esc(id), nil, nil, &k)
	return k, err
}

// Credit is POST /admin/v1/tenants/{name}/credits. amount is a decimal
// string of currency units (negative debits). replayed is true when the
// idempotency key was used before: nothing changed and the entry is the
// original one.
func (c *Client) Credit(ctx context.Context, tenant, amount, reason, idempotencyKey string) (e Entry, replayed bool, err error) {
	status, err := c.do(ctx, http.MethodPost, "/admin/v1/tenants/"+esc(tenant)+"/credits", nil, struct {
		Amount         string `json:"amount"`
		Reason         string `json:"reason"`
		IdempotencyKey string `json:"idempotency_key,omitempty"`
	}{amount, reason, idempotencyKey}, &e)
	return e, err == nil && status == http.StatusOK, err
}

// Balance is GET /admin/v1/tenants/{name}/balance.
func (c *Client) Balance(ctx context.Context, tenant string) (Balance, error) {
	var b Balance
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/balance", nil, nil, &b)
	return b, err
}

// Audit is GET /admin/v1/audit, newest first; next is the cursor of the
// following page (0 when this page is not full).
func (c *Client) Audit(ctx context.Context, q AuditQuery) (recs []AuditRecord, next int64, err error) {
	v := window(q.Since, q.Until)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	var l list[AuditRecord]
	_, err = c.do(ctx, http.MethodGet, "/admin/v1/audit", v, nil, &l)
	return l.Data, l.NextBefore, err
}

// Me is GET /v1/me: any working key may ask about itself.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var m Me
	_, err := c.do(ctx, http.MethodGet, "/v1/me", nil, nil, &m)
	return m, err
}

// SpendReport is what a tenant's requests were charged over a window.
type SpendReport struct {
	Tenant string     `json:"tenant"`
	Since  *time.Time `json:"since"`
	Until  time.Time  `json:"until"`
	Spend
}

// Spend is GET /admin/v1/tenants/{name}/spend over [since, until]; a zero
// since is from the first entry, a zero until is now.
func (c *Client) Spend(ctx context.Context, tenant string, since, until time.Time) (SpendReport, error) {
	v := window(since, until)
	var s SpendReport
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/spend", v, nil, &s)
	return s, err
}

// EntryQuery filters Entries; zero fields are not sent.
type EntryQuery struct {
	Since, Until time.Time
	Limit        int    // one page, 1 to 1000 (server default 100)
	Cursor       string // NextCursor of the previous page
}

// Entries is GET /admin/v1/tenants/{name}/entries: one page, newest first;
// next is empty on the last page.
func (c *Client) Entries(ctx context.Context, tenant string, q EntryQuery) (es []Entry, next string, err error) {
	v := window(q.Since, q.Until)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var l struct {
		Data       []Entry `json:"data"`
		NextCursor string  `json:"next_cursor,omitempty"`
	}
	_, err = c.do(ctx, http.MethodGet, "/admin/v1/tenants/"+esc(tenant)+"/entries", v, nil, &l)
	return l.Data, l.NextCursor, err
}

// Price is one model's effective price (GET /admin/v1/prices): tokens in
// micro-units per 1,000,000, per request in micro-units; Batch is a batch
// line's.
type Price struct {
	Model            string     `json:"model"`
	Source           string     `json:"source"` // "model" or "default"
	InputMicros      int64      `json:"input_micros"`
	CachedInputMicro int64      `json:"cached_input_micros"`
	OutputMicros     int64      `json:"output_micros"`
	PerRequestMicros int64      `json:"per_request_micros"`
	Batch            BatchPrice `json:"batch"`
}

// BatchPrice is a model's batch-line price.
type BatchPrice struct {
	InputMicros      int64 `json:"input_micros"`
	CachedInputMicro int64 `json:"cached_input_micros"`
	OutputMicros     int64 `json:"output_micros"`
	PerRequestMicros int64 `json:"per_request_micros"`
}

// PriceList is GET /admin/v1/prices.
type PriceList struct {
	UnknownModel string  `json:"unknown_model"`
	Default      *Price  `json:"default"`
	Data         []Price `json:"data"`
}

// Prices is GET /admin/v1/prices: the whole list.
func (c *Client) Prices(ctx context.Context) (PriceList, error) {
	var l PriceList
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/prices", nil, nil, &l)
	return l, err
}

// PriceOf is GET /admin/v1/prices?model=: what a request for model is
// charged now (a 404 *Error with code model_not_priced when it is refused).
func (c *Client) PriceOf(ctx context.Context, model string) (Price, error) {
	var l PriceList
	if _, err := c.do(ctx, http.MethodGet, "/admin/v1/prices", url.Values{"model": {model}}, nil, &l); err != nil {
		return Price{}, err
	}
	if len(l.Data) != 1 {
		return Price{}, fmt.Errorf("the server answered %d prices for model %q, want 1", len(l.Data), model)
	}
	return l.Data[0], nil
}
