// Package canary sends one real, paid request through a running gateway
// and checks every link it passes: the admin API funds a throwaway tenant
// and makes it a key, the request is answered (time to first token
// measured), the ledger holds its charge, the balance moved by exactly that
// charge, and the gateway's metrics counted it. It cleans up after itself
// (credits the charge back, revokes the key, suspends the tenant). Each
// link is one doctor result with its remedy (`llmctl doctor --e2e`).
package canary

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/preflight"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

// Options configure one canary run.
type Options struct {
	Admin *adminclient.Client
	// Server is the gateway's base URL (the OpenAI API is under /v1).
	Server string
	// Model to ask; empty: the first the gateway lists.
	Model string
	// Fund is what the canary tenant is credited, in currency units.
	Fund string
	// MetricsURL is the gateway's admin /metrics; empty skips that link.
	MetricsURL string
	// MaxTTFT is the time to first token above which the result warns.
	MaxTTFT time.Duration
	// Wait bounds how long the charge may take to reach the ledger.
	Wait time.Duration
	HTTP *http.Client
}

// ID prefix and category of the canary's results.
const prefix = "e2e."

func result(id, title string, o preflight.Outcome) preflight.Result {
	return preflight.Result{ID: prefix + id, Category: preflight.CatModel, Title: title, Verdict: o.Verdict,
		Message: o.Message, Evidence: o.Evidence, Remedy: o.Remedy}
}

func ok(msg string, ev ...string) preflight.Outcome {
	return preflight.Outcome{Verdict: preflight.Pass, Message: msg, Evidence: ev}
}

func bad(v preflight.Verdict, msg, remedy string, ev ...string) preflight.Outcome {
	return preflight.Outcome{Verdict: v, Message: msg, Remedy: remedy, Evidence: ev}
}

// Run walks the chain; a broken link fails its result and the links that
// depend on it are skipped.
func Run(ctx context.Context, o Options) []preflight.Result {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	o.Server = strings.TrimSuffix(o.Server, "/")
	var out []preflight.Result
	add := func(id, title string, oc preflight.Outcome) bool {
		out = append(out, result(id, title, oc))
		return oc.Verdict == preflight.Pass || oc.Verdict == preflight.Warn
	}
	skipRest := func(ids ...string) []preflight.Result {
		for _, id := range ids {
			out = append(out, result(id, id, preflight.Outcome{Verdict: preflight.Skip, Message: "not reached: an earlier link is broken"}))
		}
		return out
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "llmctl-canary-" + hex.EncodeToString(suffix[:])

	// 1. The admin API creates and funds the tenant.
	_, err := o.Admin.CreateTenant(ctx, name, adminclient.Limits{})
	if err == nil {
		_, _, err = o.Admin.Credit(ctx, name, o.Fund, "llmctl doctor --e2e canary funds", name+"-fund")
	}
	if !add("tenant", "admin API funds a canary tenant", outcome(err, "created and funded tenant "+name+" with "+o.Fund,
		"the admin API refused: give an admin key (--api-key) and a server with billing and the admin API on (adminAPI: api)")) {
		return skipRest("key", "request", "ttft", "ledger", "balance", "metrics", "cleanup")
	}
	cleanup := func(keyID string, spent int64) {
		var errs []string
		if spent > 0 {
			amt := fmt.Sprintf("%d.%06d", spent/1_000_000, spent%1_000_000)
			if _, _, err := o.Admin.Credit(ctx, name, amt, "llmctl doctor --e2e canary: charge credited back", name+"-refund"); err != nil {
				errs = append(errs, "credit back: "+err.Error())
			}
		}
		if keyID != "" {
			if _, err := o.Admin.RevokeKey(ctx, keyID); err != nil {
				errs = append(errs, "revoke key: "+err.Error())
			}
		}
		if _, err := o.Admin.SuspendTenant(ctx, name); err != nil {
			errs = append(errs, "suspend tenant: "+err.Error())
		}
		if len(errs) > 0 {
			add("cleanup", "canary cleans up", bad(preflight.Warn, "cleanup incomplete", "remove tenant "+name+" by hand: llmctl tenants suspend "+name, errs...))
			return
		}
		add("cleanup", "canary cleans up", ok("charge credited back, key revoked, tenant "+name+" suspended"))
	}

	// 2. A key for it.
	k, err := o.Admin.CreateKey(ctx, name, adminclient.NewKey{Name: "canary"})
	if !add("key", "admin API issues a key", outcome(err, "key "+k.ID+" issued", "the admin API could not create a key: check the server log")) {
		cleanup("", 0)
		return skipRest("request", "ttft", "ledger", "balance", "metrics")
	}
	before, err := o.Admin.Balance(ctx, name)
	if err != nil {
		add("request", "a paid request is answered", bad(preflight.Fail, "could not read the canary's balance: "+err.Error(), "check the ledger database the gateway uses"))
		cleanup(k.ID, 0)
		return skipRest("ttft", "ledger", "balance", "metrics")
	}
	reqsBefore, metricsErr := o.requests()

	// 3. The request, streamed, through the public API.
	ans, err := o.chat(ctx, k.Secret)
	if err != nil || ans.Text == "" {
		msg := "no answer"
		if err != nil {
			msg = err.Error()
		}
		add("request", "a paid request is answered", bad(preflight.Fail, msg, requestRemedy(msg), "model "+ans.Model))
		cleanup(k.ID, 0)
		return skipRest("ttft", "ledger", "balance", "metrics")
	}
	add("request", "a paid request is answered", ok(fmt.Sprintf("%q answered %d+%d tokens", ans.Model, ans.Prompt, ans.Completion)))
	if o.MaxTTFT > 0 && ans.TTFT > o.MaxTTFT {
		add("ttft", "time to first token", bad(preflight.Warn, fmt.Sprintf("first token after %s, over %s", ans.TTFT.Round(time.Millisecond), o.MaxTTFT),
			"the backend is slow or queueing: check its load (llmctl top) and maxConcurrency"))
	} else {
		add("ttft", "time to first token", ok("first token after "+ans.TTFT.Round(time.Millisecond).String()))
	}

	// 4. The ledger's charge, 5. the balance moved by exactly it.
	e, err := o.charge(ctx, name)
	var spent int64
	switch {
	case err != nil:
		add("ledger", "the ledger charged it", bad(preflight.Fail, err.Error(),
			"the charge did not reach the ledger: check the gateway's spool (llmctl_ledger_spool_depth) and the database"))
		add("balance", "the balance moved by the charge", preflight.Outcome{Verdict: preflight.Skip, Message: "no charge to compare"})
	default:
		spent = -e.AmountMicros
		price, perr := o.Admin.PriceOf(ctx, ans.Model)
		add("ledger", "the ledger charged it", judgeCharge(e, ans, price, perr))
		after, err := o.Admin.Balance(ctx, name)
		switch {
		case err != nil:
			add("balance", "the balance moved by the charge", bad(preflight.Fail, err.Error(), "check the ledger database"))
		case after.BalanceMicros-before.BalanceMicros != e.AmountMicros || after.ReservedMicros != 0:
			add("balance", "the balance moved by the charge", bad(preflight.Fail,
				fmt.Sprintf("balance moved %d µ, the charge is %d µ (reserved now %d µ)", after.BalanceMicros-before.BalanceMicros, e.AmountMicros, after.ReservedMicros),
				"the ledger disagrees with itself: llmctl ledger verify"))
		default:
			add("balance", "the balance moved by the charge", ok(fmt.Sprintf("balance %s → %s, exactly the charge", before.Balance, after.Balance)))
		}
	}

	// 6. The metrics counted it.
	switch {
	case o.MetricsURL == "":
		add("metrics", "the metrics counted it", preflight.Outcome{Verdict: preflight.Skip, Message: "no --metrics-url given"})
	case metricsErr != nil:
		add("metrics", "the metrics counted it", bad(preflight.Fail, metricsErr.Error(), "the gateway's admin listener (adminListen) must serve /metrics"))
	default:
		n, err := o.requests()
		switch {
		case err != nil:
			add("metrics", "the metrics counted it", bad(preflight.Fail, err.Error(), "the gateway's admin listener (adminListen) must serve /metrics"))
		case n <= reqsBefore:
			add("metrics", "the metrics counted it", bad(preflight.Fail, "llmctl_requests_total did not move", "the metrics are not this gateway's: is the URL the same replica's admin listener?"))
		default:
			add("metrics", "the metrics counted it", ok(fmt.Sprintf("llmctl_requests_total %v → %v", reqsBefore, n)))
		}
	}
	cleanup(k.ID, spent)
	return out
}

// requestRemedy names the fix for the gateway's answer to the request.
func requestRemedy(msg string) string {
	switch {
	case strings.Contains(msg, "model_not_priced"):
		return "price the model in the prices file (--prices), or set unknownModel: default, so that it can be sold"
	case strings.Contains(msg, "insufficient_quota"):
		return "the canary's funds did not reach the ledger the gateway reserves against: are the admin API and the gateway on the same database?"
	case strings.Contains(msg, "HTTP 5"):
		return "the backend failed: `llmctl doctor` for the chain below it, the gateway's log for this request"
	}
	return "the gateway or its backend did not answer: `llmctl doctor` for the chain below, the gateway's log for this request"
}

func outcome(err error, msg, remedy string) preflight.Outcome {
	if err != nil {
		return bad(preflight.Fail, err.Error(), remedy)
	}
	return ok(msg)
}

// Answer is one streamed completion as the client saw it.
type Answer struct {
	Model              string
	Text               string
	Prompt, Completion int64
	TTFT               time.Duration
}

// chat streams one short completion and measures the time to its first
// content chunk.
func (o Options) chat(ctx context.Context, key string) (Answer, error) {
	model := o.Model
	if model == "" {
		m, err := o.firstModel(ctx, key)
		if err != nil {
			return Answer{}, err
		}
		model = m
	}
	return Stream(ctx, o.HTTP, o.Server, key, model, "Say hello.", 8)
}

// Stream sends one streamed chat completion to server (base URL, /v1
// below it) and reads it to the end: the text, the usage chunk's tokens and
// the time from sending to the first content chunk.
func Stream(ctx context.Context, hc *http.Client, server, key, model, prompt string, maxTokens int) (Answer, error) {
	a := Answer{Model: model}
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens, "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return a, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return a, fmt.Errorf("POST /v1/chat/completions: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return a, fmt.Errorf("POST /v1/chat/completions: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var sb strings.Builder
	for sc.Scan() {
		data, found := strings.CutPrefix(sc.Text(), "data: ")
		if !found || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				Prompt     int64 `json:"prompt_tokens"`
				Completion int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return a, fmt.Errorf("the stream sent a chunk that is not JSON: %w", err)
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != "" && a.TTFT == 0 {
				a.TTFT = time.Since(start)
			}
			sb.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			a.Prompt, a.Completion = c.Usage.Prompt, c.Usage.Completion
		}
	}
	a.Text = sb.String()
	if err := sc.Err(); err != nil {
		return a, fmt.Errorf("reading the stream: %w", err)
	}
	return a, nil
}

func (o Options) firstModel(ctx context.Context, key string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.Server+"/v1/models", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET /v1/models: %w", err)
	}
	defer resp.Body.Close()
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || len(l.Data) == 0 {
		return "", fmt.Errorf("GET /v1/models: no model listed (HTTP %d)", resp.StatusCode)
	}
	return l.Data[0].ID, nil
}

// charge waits (bounded by o.Wait) for the canary's debit in the ledger:
// the gateway writes it through its spool, shortly after the answer.
func (o Options) charge(ctx context.Context, tenant string) (adminclient.Entry, error) {
	deadline := time.Now().Add(o.Wait)
	for {
		es, _, err := o.Admin.Entries(ctx, tenant, adminclient.EntryQuery{Limit: 10})
		if err != nil {
			return adminclient.Entry{}, err
		}
		for _, e := range es {
			if e.Kind == "debit" {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return adminclient.Entry{}, fmt.Errorf("no charge in the ledger %s after the answer", o.Wait)
		}
		select {
		case <-ctx.Done():
			return adminclient.Entry{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// requests sums llmctl_requests_total at MetricsURL.
func (o Options) requests() (float64, error) {
	if o.MetricsURL == "" {
		return 0, nil
	}
	resp, err := o.HTTP.Get(o.MetricsURL)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("metrics at %s: %w", o.MetricsURL, err)
	}
	var n float64
	if f, ok := fams["llmctl_requests_total"]; ok {
		for _, m := range f.Metric {
			n += m.GetCounter().GetValue()
		}
	}
	return n, nil
}

// judgeCharge holds the ledger's charge e to the answer's usage and to the
// model's price as the admin API reports it: the amount must be what that
// price costs for the tokens charged (ledger.Price.Cost, the ledger's own
// rounding), to the micro-unit. perr: the price could not be read, so only
// the tokens are checked (a warning, not a failure: an older server).
func judgeCharge(e adminclient.Entry, ans Answer, price adminclient.Price, perr error) preflight.Outcome {
	spent := -e.AmountMicros
	if e.PromptTokens != ans.Prompt || e.CompletionTokens != ans.Completion {
		return bad(preflight.Fail, fmt.Sprintf("charged %d+%d tokens, the answer said %d+%d", e.PromptTokens, e.CompletionTokens, ans.Prompt, ans.Completion),
			"usage and charge disagree: run llmctl ledger reconcile against the backend's /metrics")
	}
	if spent <= 0 {
		return bad(preflight.Fail, fmt.Sprintf("model %q was charged %s: served for free", ans.Model, e.Amount),
			"price the model (prices: file, --prices) or the gateway gives it away")
	}
	if perr != nil {
		return bad(preflight.Warn, fmt.Sprintf("charged %s for %d+%d tokens; the amount is not checked: the price list could not be read: %v", e.Amount, e.PromptTokens, e.CompletionTokens, perr),
			"upgrade the gateway to one that serves GET /admin/v1/prices")
	}
	c := ledger.Micros(price.CachedInputMicro)
	pr := ledger.Price{Input: ledger.Micros(price.InputMicros), CachedInput: &c, Output: ledger.Micros(price.OutputMicros), PerRequest: ledger.Micros(price.PerRequestMicros)}
	u := billing.Usage{PromptTokens: e.PromptTokens, CompletionTokens: e.CompletionTokens, CachedPromptTokens: e.CachedPromptTokens}
	want, err := pr.Cost(u)
	if err != nil {
		return bad(preflight.Fail, fmt.Sprintf("the price of %q cannot cost %d+%d tokens: %v", ans.Model, e.PromptTokens, e.CompletionTokens, err), "check the prices file")
	}
	ev := fmt.Sprintf("price of %q: input %d, cached input %d, output %d µ per 1M tokens, %d µ per request",
		ans.Model, price.InputMicros, price.CachedInputMicro, price.OutputMicros, price.PerRequestMicros)
	if int64(want) != spent {
		return bad(preflight.Fail, fmt.Sprintf("charged %s for %d+%d tokens (%d cached); the price list says it costs %s", e.Amount, e.PromptTokens, e.CompletionTokens, e.CachedPromptTokens, want.String()),
			"the ledger charged a different price than it lists: check that every replica runs the same prices file, then llmctl ledger verify", ev)
	}
	return ok(fmt.Sprintf("charged %s for %d+%d tokens, exactly its price", e.Amount, e.PromptTokens, e.CompletionTokens), ev)
}
