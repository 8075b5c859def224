package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/llmctl/llmctl/pkg/serve/apierror"
)

// The API's JSON shapes, as OpenAI documents them.

type fileObject struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

func toFileObject(f File) fileObject {
	return fileObject{ID: f.ID, Object: "file", Bytes: f.Size, CreatedAt: f.CreatedAt.Unix(), Filename: f.Filename,
		Purpose: f.Purpose, Status: "processed"}
}

type batchErrors struct {
	Object string      `json:"object"`
	Data   []LineError `json:"data"`
}

type requestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

type batchObject struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Errors           *batchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           Status            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    requestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

func optTime(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toBatchObject(b Batch) batchObject {
	o := batchObject{ID: b.ID, Object: "batch", Endpoint: b.Endpoint, InputFileID: b.InputFileID,
		CompletionWindow: b.CompletionWindow, Status: b.Status, OutputFileID: optString(b.OutputFileID),
		ErrorFileID: optString(b.ErrorFileID), CreatedAt: b.CreatedAt.Unix(), InProgressAt: optTime(b.InProgressAt),
		ExpiresAt: optTime(b.ExpiresAt), FinalizingAt: optTime(b.FinalizingAt), CompletedAt: optTime(b.CompletedAt),
		FailedAt: optTime(b.FailedAt), ExpiredAt: optTime(b.ExpiredAt), CancellingAt: optTime(b.CancellingAt),
		CancelledAt: optTime(b.CancelledAt), RequestCounts: requestCounts{Total: b.Total, Completed: b.Completed, Failed: b.Failed}}
	if b.Errors != "" {
		var data []LineError
		if json.Unmarshal([]byte(b.Errors), &data) == nil {
			o.Errors = &batchErrors{Object: "list", Data: data}
		}
	}
	if b.Metadata != "" {
		_ = json.Unmarshal([]byte(b.Metadata), &o.Metadata)
	}
	return o
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, apierror.TypeServer, "internal_error", "", "cannot encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	apierror.Write(w, &apierror.Error{Status: status, Type: typ, Code: code, Param: param, Message: msg})
}

func badRequest(w http.ResponseWriter, param, format string, args ...any) {
	writeError(w, http.StatusBadRequest, apierror.TypeInvalidRequest, "invalid_request", param, fmt.Sprintf(format, args...))
}

func notFound(w http.ResponseWriter, what, id string) {
	writeError(w, http.StatusNotFound, apierror.TypeNotFound, "not_found", "id", fmt.Sprintf("no %s with id %q", what, id))
}

// storeFailed answers a store error; ErrNotFound is a 404.
func (s *Service) storeFailed(w http.ResponseWriter, r *http.Request, what, id string, err error) {
	if errors.Is(err, ErrNotFound) {
		notFound(w, what, id)
		return
	}
	s.log.ErrorContext(r.Context(), "batch store", "err", err)
	writeError(w, http.StatusServiceUnavailable, apierror.TypeServer, "store_unavailable", "", "the batch store is unavailable; try again")
}

// uploadFile is POST /v1/files: multipart with purpose=batch and file.
func (s *Service) uploadFile(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		badRequest(w, "", "send the file as multipart/form-data with the fields purpose and file")
		return
	}
	// The whole upload, parts and headers included, is bounded.
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.Limits.MaxFileBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		badRequest(w, "", "the upload is not a multipart form with a boundary; send multipart/form-data with the fields purpose and file")
		return
	}
	var (
		purpose  string
		filename string
		content  []byte
		gotFile  bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			s.uploadReadFailed(w, err)
			return
		}
		switch part.FormName() {
		case "purpose":
			b, err := io.ReadAll(io.LimitReader(part, 64))
			if err != nil {
				s.uploadReadFailed(w, err)
				return
			}
			purpose = string(b)
		case "file":
			gotFile = true
			filename = part.FileName()
			content, err = io.ReadAll(io.LimitReader(part, s.opts.Limits.MaxFileBytes+1))
			if err != nil {
				s.uploadReadFailed(w, err)
				return
			}
			if int64(len(content)) > s.opts.Limits.MaxFileBytes {
				writeError(w, http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "file_too_large", "file",
					fmt.Sprintf("the file is larger than the limit of %d bytes", s.opts.Limits.MaxFileBytes))
				return
			}
		default:
			badRequest(w, part.FormName(), "unknown field %q; send only purpose and file", part.FormName())
			return
		}
	}
	switch {
	case !gotFile:
		badRequest(w, "file", "file is missing")
		return
	case purpose == "":
		badRequest(w, "purpose", "purpose is missing; use batch")
		return
	case purpose != "batch":
		badRequest(w, "purpose", "purpose %q is not supported; use batch", purpose)
		return
	}
	if filename == "" {
		filename = "file.jsonl"
	}
	now := s.opts.Now()
	f := File{ID: newID("file-", now), TenantID: p.TenantID, Purpose: purpose, Filename: filename, Size: int64(len(content)),
		CreatedAt: now, Content: content}
	if err := s.opts.Store.CreateFile(r.Context(), f); err != nil {
		s.storeFailed(w, r, "file", f.ID, err)
		return
	}
	writeJSON(w, toFileObject(f))
}

func (s *Service) uploadReadFailed(w http.ResponseWriter, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeError(w, http.StatusRequestEntityTooLarge, apierror.TypeInvalidRequest, "file_too_large", "file",
			fmt.Sprintf("the upload is larger than the limit of %d bytes", s.opts.Limits.MaxFileBytes))
		return
	}
	// Go's own reason (multipart: NextPart: …) would mean little to a client.
	badRequest(w, "", "the multipart form is cut short or malformed; send multipart/form-data with the fields purpose and file")
}

func (s *Service) getFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, err := s.opts.Store.File(r.Context(), principal(r).TenantID, id)
	if err != nil {
		s.storeFailed(w, r, "file", id, err)
		return
	}
	writeJSON(w, toFileObject(f))
}

func (s *Service) fileContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, err := s.opts.Store.FileContent(r.Context(), principal(r).TenantID, id)
	if err != nil {
		s.storeFailed(w, r, "file", id, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Content)))
	_, _ = w.Write(f.Content)
}

func (s *Service) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.opts.Store.DeleteFile(r.Context(), principal(r).TenantID, id); err != nil {
		s.storeFailed(w, r, "file", id, err)
		return
	}
	writeJSON(w, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "file", true})
}

// batchFields are the fields of POST /v1/batches; every other is refused.
var batchFields = []string{"input_file_id", "endpoint", "completion_window", "metadata"}

// maxCreateBody bounds POST /v1/batches (metadata is at most 16 small pairs).
const maxCreateBody = 64 << 10

func (s *Service) createBatch(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCreateBody))
	if err != nil {
		badRequest(w, "", "cannot read the request body (at most %d bytes)", maxCreateBody)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		badRequest(w, "", "the body must be a JSON object")
		return
	}
	for k := range fields {
		if !slices.Contains(batchFields, k) {
			badRequest(w, k, "unknown field %q; this gateway supports input_file_id, endpoint, completion_window and metadata", k)
			return
		}
	}
	str := func(name string) (string, bool) {
		var v string
		raw, ok := fields[name]
		if !ok {
			badRequest(w, name, "%s is missing", name)
			return "", false
		}
		if json.Unmarshal(raw, &v) != nil {
			badRequest(w, name, "%s must be a string", name)
			return "", false
		}
		return v, true
	}
	in, ok := str("input_file_id")
	if !ok {
		return
	}
	ep, ok := str("endpoint")
	if !ok {
		return
	}
	if !slices.Contains(endpoints, ep) {
		badRequest(w, "endpoint", "endpoint %q is not supported; use one of %v", ep, endpoints)
		return
	}
	window, ok := str("completion_window")
	if !ok {
		return
	}
	if window != "24h" {
		badRequest(w, "completion_window", "completion_window %q is not supported; use 24h", window)
		return
	}
	meta := ""
	if raw, ok := fields["metadata"]; ok && string(raw) != "null" {
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil {
			badRequest(w, "metadata", "metadata must be an object of string values")
			return
		}
		if len(m) > 16 {
			badRequest(w, "metadata", "metadata has %d keys; at most 16", len(m))
			return
		}
		for k, v := range m {
			if len(k) > 64 || len(v) > 512 {
				badRequest(w, "metadata", "metadata key %q: keys are at most 64 characters, values at most 512", k)
				return
			}
		}
		meta = string(raw)
	}
	f, err := s.opts.Store.File(r.Context(), p.TenantID, in)
	if errors.Is(err, ErrNotFound) {
		badRequest(w, "input_file_id", "input_file_id: no file with id %q", in)
		return
	}
	if err != nil {
		s.storeFailed(w, r, "file", in, err)
		return
	}
	if f.Purpose != "batch" {
		badRequest(w, "input_file_id", "file %q has purpose %s; upload the input with purpose batch", in, f.Purpose)
		return
	}
	pj, err := json.Marshal(p)
	if err != nil {
		s.storeFailed(w, r, "batch", "", fmt.Errorf("encode principal: %w", err))
		return
	}
	now := s.opts.Now()
	b := Batch{ID: newID("batch_", now), TenantID: p.TenantID, Principal: string(pj), InputFileID: in, Endpoint: ep,
		CompletionWindow: window, Metadata: meta, Status: StatusValidating, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	if err := s.opts.Store.CreateBatch(r.Context(), b); err != nil {
		s.storeFailed(w, r, "batch", b.ID, err)
		return
	}
	s.notify()
	writeJSON(w, toBatchObject(b))
}

func (s *Service) getBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, err := s.opts.Store.Batch(r.Context(), principal(r).TenantID, id)
	if err != nil {
		s.storeFailed(w, r, "batch", id, err)
		return
	}
	writeJSON(w, toBatchObject(b))
}

func (s *Service) listBatches(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "after" && k != "limit" {
			badRequest(w, k, "unknown query parameter %q; use after and limit", k)
			return
		}
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			badRequest(w, "limit", "limit must be a whole number from 1 to 100")
			return
		}
		limit = n
	}
	after := q.Get("after")
	bs, more, err := s.opts.Store.ListBatches(r.Context(), principal(r).TenantID, after, limit)
	if errors.Is(err, ErrNotFound) {
		badRequest(w, "after", "no batch with id %q", after)
		return
	}
	if err != nil {
		s.storeFailed(w, r, "batch", "", err)
		return
	}
	data, ids := make([]batchObject, 0, len(bs)), make([]string, 0, len(bs))
	for _, b := range bs {
		data, ids = append(data, toBatchObject(b)), append(ids, b.ID)
	}
	page := newListPage(data, ids, more)
	writeJSON(w, page)
}

// cancelBatch moves a running batch to cancelling (the worker finishes it
// as cancelled).
func (s *Service) cancelBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, err := Cancel(r.Context(), s.opts.Store, principal(r).TenantID, id, s.opts.Now())
	switch {
	case errors.Is(err, ErrNotCancellable):
		writeError(w, http.StatusConflict, apierror.TypeInvalidRequest, "batch_not_cancellable", "",
			fmt.Sprintf("batch %s is %s and can no longer be cancelled", id, b.Status))
	case errors.Is(err, errCancelConflict):
		writeError(w, http.StatusConflict, apierror.TypeInvalidRequest, "conflict", "", "the batch changed while cancelling; try again")
	case err != nil:
		s.storeFailed(w, r, "batch", id, err)
	default:
		s.notify()
		writeJSON(w, toBatchObject(b))
	}
}
