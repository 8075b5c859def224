package batch

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
)

// listPage is OpenAI's cursor page: openai-go's auto-pagination asks for
// the next page with after = the last id while has_more is true.
type listPage[T any] struct {
	Object  string  `json:"object"`
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func newListPage[T any](data []T, ids []string, more bool) listPage[T] {
	p := listPage[T]{Object: "list", Data: data, HasMore: more}
	if p.Data == nil {
		p.Data = []T{}
	}
	if len(ids) > 0 {
		p.FirstID, p.LastID = &ids[0], &ids[len(ids)-1]
	}
	return p
}

// filePurposes are the purposes a listed file can have here.
var filePurposes = []string{"batch", "batch_output"}

// listFiles is GET /v1/files: the caller's files, newest first unless
// order=asc, of one purpose if asked, at most limit (1 to 10,000; OpenAI's
// default is 10,000) after the file id after.
func (s *Service) listFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"purpose", "limit", "after", "order"}, k) {
			badRequest(w, k, "unknown query parameter %q; use purpose, limit, after and order", k)
			return
		}
	}
	fq := FileQuery{Purpose: q.Get("purpose"), After: q.Get("after"), Limit: 10_000}
	if fq.Purpose != "" && !slices.Contains(filePurposes, fq.Purpose) {
		badRequest(w, "purpose", "purpose %q: files here have purpose batch or batch_output", fq.Purpose)
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10_000 {
			badRequest(w, "limit", "limit must be a whole number from 1 to 10000")
			return
		}
		fq.Limit = n
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		fq.Asc = true
	default:
		badRequest(w, "order", "order must be asc or desc")
		return
	}
	fs, more, err := s.opts.Store.ListFiles(r.Context(), principal(r).TenantID, fq)
	if errors.Is(err, ErrNotFound) {
		badRequest(w, "after", "after: no file with id %q", fq.After)
		return
	}
	if err != nil {
		s.storeFailed(w, r, "file", "", err)
		return
	}
	data, ids := make([]fileObject, 0, len(fs)), make([]string, 0, len(fs))
	for _, f := range fs {
		data, ids = append(data, toFileObject(f)), append(ids, f.ID)
	}
	writeJSON(w, newListPage(data, ids, more))
}
