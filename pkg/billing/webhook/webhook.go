// Package webhook credits payments to the ledger from signed provider
// deliveries: Stripe (POST …/stripe), Standard Webhooks (POST …/standard)
// and Lemon Squeezy (POST …/lemonsqueezy).
// A delivery is verified before anything is parsed, written idempotently by
// its event id, and answered 2xx only once the entry is durable (or was
// already there), so a provider's retry is always safe and always needed on
// failure. Deliveries are exempt from API keys and rate limits; their
// signatures are the authentication.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Crediter writes one entry idempotently and reports whether it was new;
// *ledger.Ledger implements it. Store reads the balance a payment would
// move, to refuse one that would overflow it.
type Crediter interface {
	Credit(ctx context.Context, e ledger.Entry) (bool, error)
	Store() ledger.Store
}

// Tenants finds the tenant a payment names; store.Store implements it.
type Tenants interface {
	GetTenant(ctx context.Context, nameOrID string) (store.Tenant, error)
}

// Config configures the handler. Several secrets per provider may be given
// at once, so a secret can be rotated without dropping deliveries.
type Config struct {
	StripeSecrets   []string // Stripe endpoint secrets (whsec_…)
	StandardSecrets []string // Standard Webhooks secrets (whsec_<base64>)
	// LemonSqueezySecrets are Lemon Squeezy signing secrets (any string).
	LemonSqueezySecrets []string
	// Tolerance is how far a delivery's timestamp may be from now (default 300s).
	Tolerance time.Duration
	// MaxBody limits a delivery's size (default 1 MiB); larger is a 413.
	MaxBody int64
	// Currency is the ledger's currency (ISO code, default "usd"), priced in
	// cents by Stripe; a payment in another currency is not credited.
	Currency   string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Handler serves POST {prefix}stripe, {prefix}standard and {prefix}lemonsqueezy.
type Handler struct {
	cfg      Config
	stdKeys  [][]byte
	ledger   Crediter
	tenants  Tenants
	log      *slog.Logger
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	register prometheus.Registerer
}

// New builds the handler; a provider without secrets answers 404.
func New(cfg Config, l Crediter, tenants Tenants) (*Handler, error) {
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = 300 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Currency == "" {
		cfg.Currency = "usd"
	}
	cfg.Currency = strings.ToLower(cfg.Currency)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, ledger: l, tenants: tenants, log: cfg.Logger}
	for _, s := range cfg.StandardSecrets {
		k, err := StandardSecret(s)
		if err != nil {
			return nil, err
		}
		h.stdKeys = append(h.stdKeys, k)
	}
	for _, s := range cfg.StripeSecrets {
		if s == "" {
			return nil, errors.New("stripe webhook secret is empty")
		}
	}
	for _, s := range cfg.LemonSqueezySecrets {
		if s == "" {
			return nil, errors.New("lemon squeezy webhook secret is empty")
		}
	}
	h.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmctl_webhook_events_total",
		Help: "Payment webhook deliveries by provider and outcome.",
	}, []string{"provider", "result"})
	h.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmctl_webhook_rejected_total",
		Help: "Signed payment webhook events refused for good (400), by provider and reason (id_too_long, amount_overflow).",
	}, []string{"provider", "reason"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.events); err != nil {
			return nil, fmt.Errorf("webhook metrics: %w", err)
		}
		if err := cfg.Registerer.Register(h.rejected); err != nil {
			cfg.Registerer.Unregister(h.events) // only what this call registered
			return nil, fmt.Errorf("webhook metrics: %w", err)
		}
		h.register = cfg.Registerer
	}
	return h, nil
}

// Outcomes, as the metric's result label and the response's "result".
const (
	resultCredited      = "credited"
	resultDebited       = "debited"
	resultDuplicate     = "duplicate"
	resultIgnored       = "ignored" // event type we do not act on
	resultUnknownTenant = "unknown_tenant"
	resultBadSignature  = "bad_signature"
	resultBadRequest    = "bad_request"
	resultRejected      = "rejected" // signed, but never creditable: see reject
	resultError         = "error"
)

// maxKey is the longest idempotency key the ledger takes
// (ledger.Entry.Validate); an event whose provider + ":" + id is longer can
// never be written.
const maxKey = 256

// Reasons a signed event is refused for good, the label of
// llmctl_webhook_rejected_total.
const (
	reasonIDTooLong = "id_too_long"
	reasonOverflow  = "amount_overflow"
)

// payment is what a verified delivery asks of the ledger.
type payment struct {
	provider string
	eventID  string
	typ      string
	tenant   string
	amount   ledger.Micros // signed: refunds are negative
	ignore   string        // why it is not acted on, when set
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	provider := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if !h.serves(provider) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such webhook endpoint"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.answer(w, provider, http.StatusRequestEntityTooLarge, resultBadRequest, fmt.Sprintf("body over %d bytes", h.cfg.MaxBody))
			return
		}
		h.answer(w, provider, http.StatusBadRequest, resultBadRequest, "cannot read body")
		return
	}
	now := h.cfg.Now()
	var p payment
	if provider == "stripe" {
		err = VerifyStripe(body, r.Header.Get("Stripe-Signature"), h.cfg.StripeSecrets, h.cfg.Tolerance, now)
		if err == nil {
			p, err = parseStripe(body, h.cfg.Currency)
		}
	} else if provider == "lemonsqueezy" {
		err = VerifyLemonSqueezy(body, r.Header.Get("X-Signature"), h.cfg.LemonSqueezySecrets)
		if err == nil {
			p, err = parseLemonSqueezy(r.Header.Get("X-Event-Name"), body, h.cfg.Currency)
		}
	} else {
		id := r.Header.Get("webhook-id")
		err = VerifyStandard(body, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), h.stdKeys, h.cfg.Tolerance, now)
		if err == nil {
			p, err = parseStandard(id, body, h.cfg.Currency)
		}
	}
	if errors.Is(err, ErrSignature) {
		h.log.Warn("webhook rejected", "provider", provider, "err", err)
		h.answer(w, provider, http.StatusBadRequest, resultBadSignature, "invalid signature")
		return
	}
	if err != nil {
		h.log.Warn("webhook payload rejected", "provider", provider, "err", err)
		h.answer(w, provider, http.StatusBadRequest, resultBadRequest, err.Error())
		return
	}
	status, result, msg := h.apply(r.Context(), p, now)
	h.answer(w, provider, status, result, msg)
}

// serves reports whether provider is one this handler has secrets for.
func (h *Handler) serves(provider string) bool {
	switch provider {
	case "stripe":
		return len(h.cfg.StripeSecrets) > 0
	case "standard":
		return len(h.stdKeys) > 0
	case "lemonsqueezy":
		return len(h.cfg.LemonSqueezySecrets) > 0
	}
	return false
}

func (h *Handler) apply(ctx context.Context, p payment, now time.Time) (int, string, string) {
	// The sender chose these strings: logged cut short, whatever their size.
	log := h.log.With("provider", p.provider, "event_id", clip(p.eventID), "type", clip(p.typ))
	if p.ignore != "" {
		log.Info("webhook event not credited", "why", p.ignore)
		return http.StatusOK, resultIgnored, p.ignore
	}
	if most := maxKey - len(p.provider) - 1; len(p.eventID) > most {
		return h.reject(log, p, reasonIDTooLong, fmt.Sprintf("event id of %d bytes; at most %d", len(p.eventID), most))
	}
	t, err := h.tenants.GetTenant(ctx, p.tenant)
	if errors.Is(err, store.ErrNotFound) {
		// Answered 200: retrying cannot make the tenant appear, and an
		// operator can credit by hand from this log line.
		log.Warn("webhook names an unknown tenant; nothing credited", "tenant", clip(p.tenant), "amount", p.amount.String())
		return http.StatusOK, resultUnknownTenant, "unknown tenant"
	}
	if err != nil {
		log.Error("webhook tenant lookup failed; asking the provider to retry", "err", err)
		return http.StatusServiceUnavailable, resultError, "temporarily unavailable"
	}
	acct, err := h.ledger.Store().Account(ctx, t.ID)
	if err != nil {
		log.Error("webhook balance lookup failed; asking the provider to retry", "err", err)
		return http.StatusServiceUnavailable, resultError, "temporarily unavailable"
	}
	if !fits(acct, p.amount) {
		// Checked before writing: one database fails the write, another
		// may not. A credit landing between this read and the write can
		// still fail it (503); the retry is then refused here.
		return h.reject(log, p, reasonOverflow, "amount overflows the tenant's balance")
	}
	e := ledger.Entry{Key: p.provider + ":" + p.eventID, TenantID: t.ID, Kind: ledger.KindCredit, Amount: p.amount,
		Reason: p.provider + " " + p.typ, Time: now.UTC()}
	result := resultCredited
	if p.amount < 0 {
		e.Kind, result = ledger.KindAdjustment, resultDebited
	}
	fresh, err := h.ledger.Credit(ctx, e)
	if err != nil {
		log.Error("webhook ledger write failed; asking the provider to retry", "err", err)
		return http.StatusServiceUnavailable, resultError, "temporarily unavailable"
	}
	if !fresh {
		log.Info("webhook event already applied")
		return http.StatusOK, resultDuplicate, "already applied"
	}
	log.Info("webhook applied", "tenant", t.ID, "amount", p.amount.String())
	return http.StatusOK, result, result
}

// reject refuses a signed event that no retry can ever credit: 400, so the
// provider stops redelivering it (a 5xx has it retry for days), logged once
// at WARN and counted by reason.
func (h *Handler) reject(log *slog.Logger, p payment, reason, msg string) (int, string, string) {
	h.rejected.WithLabelValues(p.provider, reason).Inc()
	log.Warn("webhook event refused; nothing credited", "reason", reason, "detail", msg, "amount", p.amount.String())
	return http.StatusBadRequest, resultRejected, msg
}

// fits reports whether amount can move a's balance without overflowing it
// or what it has available, balance − reserved (int64 micro-units;
// reserved is never negative).
func fits(a ledger.Account, amount ledger.Micros) bool {
	b, ok := addMicros(a.Balance, amount)
	if !ok {
		return false
	}
	_, ok = addMicros(b, -a.Reserved)
	return ok
}

// addMicros is x+y and whether it did not overflow.
func addMicros(x, y ledger.Micros) (ledger.Micros, bool) {
	s := x + y
	return s, (y >= 0) == (s >= x)
}

// clipLen is how much of a sender's string a log line keeps.
const clipLen = 64

// clip is s as logged: whole up to clipLen bytes, else its first clipLen
// bytes (at a rune boundary) and its length.
func clip(s string) string {
	if len(s) <= clipLen {
		return s
	}
	cut := clipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}

func (h *Handler) answer(w http.ResponseWriter, provider string, status int, result, msg string) {
	h.events.WithLabelValues(provider, result).Inc()
	if status >= 400 {
		writeJSON(w, status, map[string]string{"error": msg, "result": result})
		return
	}
	writeJSON(w, status, map[string]string{"result": result})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Close unregisters the handler's metrics.
func (h *Handler) Close() {
	if h.register != nil {
		h.register.Unregister(h.events)
		h.register.Unregister(h.rejected)
	}
}
