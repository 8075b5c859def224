package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// A field parser reads one JSON value into its destination, or says what is
// wrong with it in the caller's terms (never a Go type name).
type field func(name string, raw json.RawMessage) *apiError

// decodeObject decodes body as one JSON object whose keys must all be in
// fields; each value goes through its parser. It is hand-rolled rather than
// json.Decoder.DisallowUnknownFields so that every message names the JSON
// field and says what it should be, whatever the encoding/json version.
func decodeObject(body []byte, fields map[string]field) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil || obj == nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return badRequest("", "the request body is not valid JSON (at byte %d)", se.Offset)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return badRequest("", "the request body is not valid JSON (it ends too early)")
		}
		return badRequest("", "the request body must be a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("", "the request body must hold one JSON object and nothing after it")
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names) // the same body always names the same field first
	for _, k := range names {
		if _, ok := fields[k]; !ok {
			return badRequest(k, "unknown field %q", k)
		}
	}
	for _, k := range names {
		if e := fields[k](k, obj[k]); e != nil {
			return e
		}
	}
	return nil
}

// count reads a non-negative whole number (a limit) into *dst.
func count(dst **int64) field {
	return func(name string, raw json.RawMessage) *apiError {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				return badRequest(name, "%q is too large", name)
			}
			return badRequest(name, "%q must be a whole number", name)
		}
		if n < 0 {
			return badRequest(name, "%q must not be negative", name)
		}
		*dst = &n
		return nil
	}
}

// text reads a JSON string into *dst.
func text(dst *string) field {
	return func(name string, raw json.RawMessage) *apiError {
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, dst) != nil {
			return badRequest(name, "%q must be a string", name)
		}
		return nil
	}
}

// modelList reads a list of model names into *dst ([] means every model).
func modelList(dst **[]string) field {
	return func(name string, raw json.RawMessage) *apiError {
		var ms []string
		if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &ms) != nil {
			return badRequest(name, "%q must be a list of model names", name)
		}
		for _, m := range ms {
			if strings.TrimSpace(m) == "" || m != strings.TrimSpace(m) {
				return badRequest(name, "%q: model name %q must be non-empty without surrounding spaces", name, m)
			}
		}
		if ms == nil {
			ms = []string{}
		}
		*dst = &ms
		return nil
	}
}

// limitsBody is the rpm/tpm/max_concurrency/batch_rpm/batch_tpm part of a
// body; nil = not sent.
type limitsBody struct{ RPM, TPM, MaxConcurrency, BatchRPM, BatchTPM *int64 }

func (l *limitsBody) fields(m map[string]field) map[string]field {
	m["rpm"], m["tpm"], m["max_concurrency"] = count(&l.RPM), count(&l.TPM), count(&l.MaxConcurrency)
	m["batch_rpm"], m["batch_tpm"] = count(&l.BatchRPM), count(&l.BatchTPM)
	return m
}

func (l limitsBody) set() bool {
	return l.RPM != nil || l.TPM != nil || l.MaxConcurrency != nil || l.BatchRPM != nil || l.BatchTPM != nil
}

// over applies the fields that were sent to base.
func (l limitsBody) over(base billing.Limits) billing.Limits {
	for _, f := range []struct {
		v   *int64
		dst *int64
	}{{l.RPM, &base.RPM}, {l.TPM, &base.TPM}, {l.MaxConcurrency, &base.MaxConcurrency},
		{l.BatchRPM, &base.BatchRPM}, {l.BatchTPM, &base.BatchTPM}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	return base
}

// createTenant is POST /admin/v1/tenants.
type createTenant struct {
	Name   string
	Limits limitsBody
}

func decodeCreateTenant(body []byte) (createTenant, *apiError) {
	var c createTenant
	if e := decodeObject(body, c.Limits.fields(map[string]field{"name": text(&c.Name)})); e != nil {
		return c, e
	}
	if err := store.ValidateName("tenant", c.Name); err != nil {
		return c, badRequest("name", "%q: %v", "name", err)
	}
	return c, nil
}

// decodeLimits is PATCH /admin/v1/tenants/{name}: the limits to change.
func decodeLimits(body []byte) (limitsBody, *apiError) {
	var l limitsBody
	if e := decodeObject(body, l.fields(map[string]field{})); e != nil {
		return l, e
	}
	if !l.set() {
		return l, badRequest("", "nothing to change: send rpm, tpm, max_concurrency, batch_rpm or batch_tpm")
	}
	return l, nil
}

// createKey is POST /admin/v1/tenants/{name}/keys.
type createKey struct {
	Name      string
	Priority  string
	Role      billing.Role
	Models    *[]string
	ExpiresIn time.Duration // 0: never expires
	Limits    limitsBody
}

func decodeCreateKey(body []byte) (createKey, *apiError) {
	var (
		c             createKey
		role, expires string
	)
	fs := c.Limits.fields(map[string]field{"name": text(&c.Name), "role": text(&role),
		"models": modelList(&c.Models), "expires_in": text(&expires), "priority": priority(&c.Priority)})
	if e := decodeObject(body, fs); e != nil {
		return c, e
	}
	if c.Name != "" {
		if err := store.ValidateName("key", c.Name); err != nil {
			return c, badRequest("name", "%q: %v", "name", err)
		}
	}
	r, err := billing.ParseRole(role)
	if err != nil {
		return c, badRequest("role", "%q must be %q or %q (got %q)", "role", billing.RoleUser, billing.RoleAdmin, role)
	}
	c.Role = r
	if expires != "" {
		d, err := time.ParseDuration(expires)
		if err != nil || d <= 0 {
			return c, badRequest("expires_in", "%q must be a positive duration such as \"720h\" (got %q)", "expires_in", expires)
		}
		c.ExpiresIn = d
	}
	return c, nil
}

// patchKey is PATCH /admin/v1/keys/{id}.
type patchKey struct {
	Models   *[]string
	Limits   limitsBody
	Priority *string
}

func decodePatchKey(body []byte) (patchKey, *apiError) {
	var p patchKey
	fs := p.Limits.fields(map[string]field{"models": modelList(&p.Models), "priority": optPriority(&p.Priority)})
	if e := decodeObject(body, fs); e != nil {
		return p, e
	}
	if p.Models == nil && !p.Limits.set() && p.Priority == nil {
		return p, badRequest("", "nothing to change: send models, rpm, tpm, max_concurrency, batch_rpm, batch_tpm or priority")
	}
	return p, nil
}
