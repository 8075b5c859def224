package batch_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// env is a gateway over a real store and ledger (one SQLite file), the
// upstream double as its backend, and the batch service with its worker.
type env struct {
	srv         *httptest.Server
	gw          *serve.Gateway
	bs          batch.Store
	ls          ledger.Store
	l           *ledger.Ledger
	keyA, keyB  string // tenants a and b; keyA may use only double-model
	tenantA     string
	startWorker func() (stop func())
	double      *upstreamdouble.Double
	svcOpts     batch.Options
}

func newEnv(t testing.TB, dsn string, limits batch.Limits, mutate ...func(*batch.Options)) *env {
	t.Helper()
	return newEnvGateway(t, dsn, limits, nil, mutate...)
}

// newEnvGateway is newEnv with the gateway's options changed by gw.
func newEnvGateway(t testing.TB, dsn string, limits batch.Limits, gw func(*serve.Options), mutate ...func(*batch.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ta, err := st.CreateTenant(ctx, "a", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTenant(ctx, "b", billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	_, keyA, err := st.CreateKey(ctx, store.NewKey{Tenant: "a", Name: "ka", Models: []string{"double-model"}})
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := st.CreateKey(ctx, store.NewKey{Tenant: "b", Name: "kb"})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	e := &env{ls: ls, keyA: keyA, keyB: keyB, tenantA: ta.ID}
	l, err := ledger.New(ls, ledger.Config{SpoolDir: t.TempDir(), Prices: ledger.Prices{Models: map[string]ledger.Price{
		"double-model": {Input: 1_000_000, Output: 1_000_000, PerRequest: 10}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(ctx) })
	e.l = l
	if _, err := ls.Apply(ctx, []ledger.Entry{{Key: "pay", TenantID: ta.ID, Kind: ledger.KindCredit, Amount: 1000 * ledger.Unit, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	e.bs = openStore(t, dsn)
	e.double = upstreamdouble.Start(t, upstreamdouble.Options{Name: "d"})
	e.svcOpts = batch.Options{Store: e.bs, Limits: limits, Concurrency: 2, PollInterval: 20 * time.Millisecond,
		Runner: batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
			return e.gw.RunLine(ctx, p, batchID, ep, body, id)
		})}
	for _, m := range mutate {
		m(&e.svcOpts)
	}
	svc, err := batch.New(e.svcOpts)
	if err != nil {
		t.Fatal(err)
	}
	gopts := serve.Options{Auth: store.NewAuthenticator(st, time.Minute), Reserver: l, Batches: svc,
		Remotes: []serve.RemoteConfig{{Name: "d", URL: e.double.URL()}}}
	if gw != nil {
		gw(&gopts)
	}
	e.gw, err = serve.New(gopts)
	if err != nil {
		t.Fatal(err)
	}
	e.gw.CheckBackends(ctx)
	e.srv = httptest.NewServer(e.gw)
	t.Cleanup(e.srv.Close)
	// Each worker is a fresh Service on the same store, as after a restart.
	e.startWorker = func() func() {
		w, err := batch.New(e.svcOpts)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); w.Run(wctx) }()
		return func() { cancel(); <-done }
	}
	return e
}

func (e *env) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func chatLine(id, model, prompt string) string {
	b, _ := json.Marshal(map[string]any{"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
		"body": map[string]any{"model": model, "max_tokens": 20, "messages": []any{map[string]any{"role": "user", "content": prompt}}}})
	return string(b)
}

func upload(t testing.TB, c openai.Client, content string) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(strings.NewReader(content), "input.jsonl", "application/jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func create(t testing.TB, c openai.Client, fileID string) *openai.Batch {
	t.Helper()
	b, err := c.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: fileID,
		Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
		Metadata: shared.Metadata{"job": "nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// poll waits for the batch to reach a terminal status.
func poll(t *testing.T, c openai.Client, id string) *openai.Batch {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := c.Batches.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusCancelled, openai.BatchStatusExpired:
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s", id, b.Status)
		}
	}
}

type outLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func download(t *testing.T, c openai.Client, id string) []outLine {
	t.Helper()
	resp, err := c.Files.Content(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []outLine
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l outLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// debits is tenant a's debit entries (one per charged request).
func (e *env) debits(t testing.TB) []ledger.Entry {
	t.Helper()
	// The ledger writes what it journaled in the background.
	for deadline := time.Now().Add(10 * time.Second); e.l.Depth() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ledger never drained")
		}
	}
	es, err := e.ls.Entries(context.Background(), ledger.Filter{TenantID: e.tenantA})
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Entry
	for _, x := range es {
		if x.Kind == ledger.KindDebit {
			out = append(out, x)
		}
	}
	return out
}

func TestBatchLifecycleWithOpenAIClient(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) { testLifecycle(t, dsn(t)) })
	}
}

func testLifecycle(t *testing.T, dsn string) {
	e := newEnv(t, dsn, batch.Limits{})
	defer e.startWorker()()
	c := e.client(e.keyA)
	ctx := context.Background()

	input := strings.Join([]string{
		chatLine("r1", "double-model", "hello tokens=3"),
		chatLine("r2", "double-model", "refused status=400"),
		chatLine("r3", "double-model", "world tokens=4"),
	}, "\n") + "\n"
	f := upload(t, c, input)
	if f.Object != "file" || f.Purpose != "batch" || f.Bytes != int64(len(input)) || f.Filename != "input.jsonl" {
		t.Fatalf("uploaded %+v", f)
	}
	got, err := c.Files.Get(ctx, f.ID)
	if err != nil || got.ID != f.ID || got.Bytes != f.Bytes {
		t.Fatalf("get file %+v %v", got, err)
	}
	b := create(t, c, f.ID)
	if b.Status != openai.BatchStatusValidating || b.Endpoint != "/v1/chat/completions" || b.Metadata["job"] != "nightly" || b.ExpiresAt != b.CreatedAt+86400 {
		t.Fatalf("created %+v", b)
	}
	b = poll(t, c, b.ID)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Total != 3 || b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 1 {
		t.Fatalf("finished %s counts %+v errors %+v", b.Status, b.RequestCounts, b.Errors)
	}
	if b.InProgressAt == 0 || b.FinalizingAt == 0 || b.CompletedAt == 0 || b.OutputFileID == "" || b.ErrorFileID == "" {
		t.Fatalf("times or files missing: %+v", b)
	}
	out := download(t, c, b.OutputFileID)
	if len(out) != 2 || out[0].CustomID != "r1" || out[1].CustomID != "r3" {
		t.Fatalf("output %+v", out)
	}
	for _, l := range out {
		var cc openai.ChatCompletion
		if l.Response == nil || l.Response.StatusCode != 200 || json.Unmarshal(l.Response.Body, &cc) != nil || len(cc.Choices) != 1 || l.Error != nil {
			t.Fatalf("output line %+v", l)
		}
	}
	errs := download(t, c, b.ErrorFileID)
	if len(errs) != 1 || errs[0].CustomID != "r2" || errs[0].Response == nil || errs[0].Response.StatusCode != 400 {
		t.Fatalf("error file %+v", errs)
	}
	// Each answered line is charged once, through the gateway's own
	// ledger path, at the batch price (half of 1 µ a token: 0.5 µ), to the
	// micro-unit: ceil(tokens × 500,000 / 1,000,000) + 10 per request.
	if d := e.debits(t); len(d) != 2 {
		t.Fatalf("%d debits, want 2 (r1, r3): %+v", len(d), d)
	} else {
		for _, x := range d {
			if !strings.Contains(x.Key, b.ID) {
				t.Fatalf("debit %s is not attributed to batch %s", x.Key, b.ID)
			}
			tokens := x.PromptTokens + x.CompletionTokens
			if want := -((tokens*500_000+999_999)/1_000_000 + 10); tokens == 0 || int64(x.Amount) != want {
				t.Fatalf("debit %d for %d tokens, want %d at the batch price", x.Amount, tokens, want)
			}
		}
	}

	// Listing pages newest first.
	b2 := create(t, c, f.ID)
	poll(t, c, b2.ID)
	page, err := c.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(1)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b2.ID || !page.HasMore {
		t.Fatalf("first page %+v %v", page, err)
	}
	page, err = c.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(1), After: openai.String(b2.ID)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b.ID || page.HasMore {
		t.Fatalf("second page %+v %v", page, err)
	}

	// Another tenant sees none of it.
	other := e.client(e.keyB)
	var apiErr *openai.Error
	for name, call := range map[string]func() error{
		"file":    func() error { _, err := other.Files.Get(ctx, f.ID); return err },
		"content": func() error { _, err := other.Files.Content(ctx, b.OutputFileID); return err },
		"delete":  func() error { _, err := other.Files.Delete(ctx, f.ID); return err },
		"batch":   func() error { _, err := other.Batches.Get(ctx, b.ID); return err },
		"cancel":  func() error { _, err := other.Batches.Cancel(ctx, b.ID); return err },
	} {
		if err := call(); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("%s of another tenant: %v, want 404", name, err)
		}
	}
	if page, err := other.Batches.List(ctx, openai.BatchListParams{}); err != nil || len(page.Data) != 0 {
		t.Fatalf("another tenant lists %+v %v", page, err)
	}

	del, err := c.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Fatalf("delete %+v %v", del, err)
	}
	if _, err := c.Files.Get(ctx, f.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Fatalf("deleted file: %v", err)
	}
}

func TestBatchValidationFailsNamingTheLine(t *testing.T) {
	e := newEnv(t, sqliteDSN(t), batch.Limits{MaxLineBytes: 2000})
	defer e.startWorker()()
	c := e.client(e.keyA)
	for name, tc := range map[string]struct {
		input, code string
		line        int64
	}{
		"malformed":   {chatLine("a", "double-model", "x") + "\n{\"custom_id\": \"b\",\n", "invalid_json_line", 2},
		"duplicate":   {chatLine("a", "double-model", "x") + "\n" + chatLine("a", "double-model", "y") + "\n", "duplicate_custom_id", 2},
		"wrong url":   {strings.Replace(chatLine("a", "double-model", "x"), "/v1/chat/completions", "/v1/embeddings", 1) + "\n", "invalid_url", 1},
		"not allowed": {chatLine("a", "double-model", "x") + "\n" + chatLine("b", "gpt-4o", "y") + "\n", "model_not_allowed", 2},
		"too large":   {chatLine("a", "double-model", strings.Repeat("w ", 2000)) + "\n", "request_too_large", 1},
		"unknown":     {strings.Replace(chatLine("a", "double-model", "x"), `"method"`, `"priority":1,"method"`, 1) + "\n", "unknown_parameter", 1},
		"binary":      {"\x00\x01\xff\xfe\n", "invalid_json_line", 1},
		"empty":       {"\n", "empty_file", 0},
		"stream":      {strings.Replace(chatLine("a", "double-model", "x"), `"max_tokens"`, `"stream":true,"max_tokens"`, 1), "invalid_value", 1},
	} {
		t.Run(name, func(t *testing.T) {
			b := poll(t, c, create(t, c, upload(t, c, tc.input).ID).ID)
			if b.Status != openai.BatchStatusFailed || b.FailedAt == 0 || len(b.Errors.Data) == 0 {
				t.Fatalf("status %s errors %+v", b.Status, b.Errors)
			}
			got := b.Errors.Data[0]
			if got.Code != tc.code || got.Line != tc.line || (tc.line > 0 && !strings.Contains(got.Message, fmt.Sprintf("line %d", tc.line))) {
				t.Fatalf("error %+v, want code %s on line %d", got, tc.code, tc.line)
			}
		})
	}
	if d := e.debits(t); len(d) != 0 || e.double.Requests() != 0 {
		t.Fatalf("a failed validation charged %d debits and sent %d requests", len(d), e.double.Requests())
	}
}

func TestBatchAPIRefusesUnknownFields(t *testing.T) {
	e := newEnv(t, sqliteDSN(t), batch.Limits{MaxFileBytes: 100})
	c := e.client(e.keyA)
	f := upload(t, c, chatLine("a", "double-model", "x")[:90])
	for _, tc := range []struct{ body, param string }{
		{`{"input_file_id":"` + f.ID + `","endpoint":"/v1/chat/completions","completion_window":"24h","output_expires_after":{"anchor":"created_at","seconds":3600}}`, "output_expires_after"},
		{`{"input_file_id":"` + f.ID + `","endpoint":"/v1/audio/speech","completion_window":"24h"}`, "endpoint"},
		{`{"input_file_id":"` + f.ID + `","endpoint":"/v1/chat/completions","completion_window":"1h"}`, "completion_window"},
		{`{"input_file_id":"file-nope","endpoint":"/v1/chat/completions","completion_window":"24h"}`, "input_file_id"},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/batches", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+e.keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Error struct{ Param, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if resp.StatusCode != 400 || v.Error.Param != tc.param || !strings.Contains(v.Error.Message, tc.param) {
			t.Fatalf("%s: %d %+v", tc.body, resp.StatusCode, v)
		}
	}
	// A file over the per-file limit is refused at upload with 413.
	_, err := c.Files.New(context.Background(), openai.FileNewParams{Purpose: openai.FilePurposeBatch,
		File: openai.File(bytes.NewReader(make([]byte, 101)), "big.jsonl", "application/jsonl")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("upload over the limit: %v", err)
	}
	// Without a key nothing is served.
	resp, err := http.Get(e.srv.URL + "/v1/files/" + f.ID + "/content")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || bytes.Contains(body, []byte("custom_id")) {
		t.Fatalf("no key: %d %s", resp.StatusCode, body)
	}
}

func TestBatchCancel(t *testing.T) {
	e := newEnv(t, sqliteDSN(t), batch.Limits{})
	c := e.client(e.keyA)
	var lines []string
	for i := range 6 {
		lines = append(lines, chatLine(fmt.Sprintf("c%d", i), "double-model", "slow delay=100ms"))
	}
	// Cancelled before any worker runs: nothing runs, the batch ends cancelled.
	b := create(t, c, upload(t, c, strings.Join(lines, "\n")).ID)
	cb, err := c.Batches.Cancel(context.Background(), b.ID)
	if err != nil || cb.Status != openai.BatchStatusCancelling || cb.CancellingAt == 0 {
		t.Fatalf("cancel %+v %v", cb, err)
	}
	defer e.startWorker()()
	b = poll(t, c, b.ID)
	if b.Status != openai.BatchStatusCancelled || b.CancelledAt == 0 || b.RequestCounts.Completed != 0 {
		t.Fatalf("cancelled %+v", b)
	}
	// A finished batch cannot be cancelled.
	var apiErr *openai.Error
	if _, err := c.Batches.Cancel(context.Background(), b.ID); err != nil {
		t.Fatalf("cancelling a cancelled batch again: %v", err)
	}
	done := poll(t, c, create(t, c, upload(t, c, chatLine("z", "double-model", "hi")).ID).ID)
	if _, err := c.Batches.Cancel(context.Background(), done.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict {
		t.Fatalf("cancel a completed batch: %v", err)
	}
}

// TestBatchResumesExactlyOnce stops the worker mid-batch and starts a new
// one on the same store, as after a restart: every line ends in the output
// exactly once.
func TestBatchResumesExactlyOnce(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, dsn(t), batch.Limits{})
			c := e.client(e.keyA)
			var lines []string
			for i := range 12 {
				lines = append(lines, chatLine(fmt.Sprintf("r%02d", i), "double-model", "x delay=30ms"))
			}
			b := create(t, c, upload(t, c, strings.Join(lines, "\n")).ID)
			stop := e.startWorker()
			for {
				cur, err := e.bs.Batch(context.Background(), e.tenantA, b.ID)
				if err != nil {
					t.Fatal(err)
				}
				if cur.Completed >= 3 {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			stop()
			defer e.startWorker()()
			b = poll(t, c, b.ID)
			if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 12 || b.RequestCounts.Failed != 0 {
				t.Fatalf("after restart %s %+v", b.Status, b.RequestCounts)
			}
			seen := map[string]int{}
			for _, l := range download(t, c, b.OutputFileID) {
				seen[l.CustomID]++
			}
			for i := range 12 {
				if id := fmt.Sprintf("r%02d", i); seen[id] != 1 {
					t.Fatalf("%s in the output %d times: %v", id, seen[id], seen)
				}
			}
			// A stop lets running lines finish: exactly one debit a line.
			if d := e.debits(t); len(d) != 12 {
				t.Fatalf("%d debits for 12 lines", len(d))
			}
		})
	}
}

// TestBatchExpires: a batch whose window passed before its lines ran ends
// expired, every line in the error file as batch_expired, nothing charged.
func TestBatchExpires(t *testing.T) {
	clock := testenv.NewClock(time.Now())
	e := newEnv(t, sqliteDSN(t), batch.Limits{}, func(o *batch.Options) { o.Now = clock.Now })
	c := e.client(e.keyA)
	b := create(t, c, upload(t, c, chatLine("a", "double-model", "x")+"\n"+chatLine("b", "double-model", "y")).ID)
	clock.Add(25 * time.Hour)
	defer e.startWorker()()
	b = poll(t, c, b.ID)
	if b.Status != openai.BatchStatusExpired || b.ExpiredAt == 0 || b.RequestCounts.Failed != 2 || b.OutputFileID != "" {
		t.Fatalf("expired %+v", b)
	}
	errs := download(t, c, b.ErrorFileID)
	if len(errs) != 2 || errs[0].CustomID != "a" || errs[1].CustomID != "b" {
		t.Fatalf("error file %+v", errs)
	}
	for _, l := range errs {
		if l.Response != nil || l.Error == nil || l.Error.Code != "batch_expired" {
			t.Fatalf("error line %+v", l)
		}
	}
	if d := e.debits(t); len(d) != 0 || e.double.Requests() != 0 {
		t.Fatalf("an expired batch charged %d debits, sent %d requests", len(d), e.double.Requests())
	}
}
