package batch_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestListFilesWithOpenAIClient: GET /v1/files through openai-go, its
// auto-pagination over pages of 2, both orders, by purpose (a finished
// batch's output file is batch_output); another tenant lists none of them.
func TestListFilesWithOpenAIClient(t *testing.T) {
	e := newEnv(t, sqliteDSN(t), batch.Limits{})
	defer e.startWorker()()
	c := e.client(e.keyA)
	ctx := context.Background()
	var uploaded []string
	for range 5 {
		uploaded = append(uploaded, upload(t, c, chatLine("a", "double-model", "x")).ID)
	}
	b := poll(t, c, create(t, c, uploaded[0]).ID)
	if b.OutputFileID == "" {
		t.Fatalf("batch %+v", b)
	}
	list := func(p openai.FileListParams) []openai.FileObject {
		t.Helper()
		var fs []openai.FileObject
		it := c.Files.ListAutoPaging(ctx, p)
		for it.Next() {
			fs = append(fs, it.Current())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	asc := list(openai.FileListParams{Limit: openai.Int(2), Order: openai.FileListParamsOrderAsc, Purpose: openai.String("batch")})
	if len(asc) != 5 {
		t.Fatalf("%d batch files, want 5", len(asc))
	}
	for i, f := range asc {
		if f.ID != uploaded[i] || f.Purpose != "batch" || f.Bytes == 0 {
			t.Fatalf("file %d: %+v, want %s", i, f, uploaded[i])
		}
	}
	desc := list(openai.FileListParams{Limit: openai.Int(2)})
	if len(desc) != 6 || desc[0].ID != b.OutputFileID || desc[1].ID != uploaded[4] || desc[5].ID != uploaded[0] {
		t.Fatalf("newest first: %+v", desc)
	}
	out := list(openai.FileListParams{Purpose: openai.String("batch_output")})
	if len(out) != 1 || out[0].ID != b.OutputFileID {
		t.Fatalf("batch_output files %+v", out)
	}
	if fs := e.clientList(t, e.keyB); len(fs) != 0 {
		t.Fatalf("another tenant lists %+v", fs)
	}
	var apiErr *openai.Error
	for _, p := range []openai.FileListParams{
		{After: openai.String(uploaded[0]), Limit: openai.Int(0)},
		{Purpose: openai.String("fine-tune")},
		{Order: "sideways"},
	} {
		if _, err := c.Files.List(ctx, p); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
			t.Fatalf("%+v: %v, want 400", p, err)
		}
	}
	// Another tenant's file id is no cursor.
	other := e.client(e.keyB)
	if _, err := other.Files.List(ctx, openai.FileListParams{After: openai.String(uploaded[0])}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("another tenant's cursor: %v", err)
	}
}

func (e *env) clientList(t *testing.T, key string) []openai.FileObject {
	t.Helper()
	c := e.client(key)
	page, err := c.Files.List(context.Background(), openai.FileListParams{})
	if err != nil {
		t.Fatal(err)
	}
	return page.Data
}
