package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func TestWarnUnpriced(t *testing.T) {
	p, err := ledger.ParsePrices([]byte("models:\n  priced: {input: 1, output: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	warn := warnUnpriced(p, slog.New(slog.NewTextHandler(&buf, nil)))
	warn([]string{"priced", "free-lunch", "other"})
	out := buf.String()
	if !strings.Contains(out, "models=\"[free-lunch other]\"") || strings.Contains(out, "priced ") || !strings.Contains(out, "model_not_priced") {
		t.Fatalf("log: %s", out)
	}
	buf.Reset()
	warn([]string{"priced"})
	if buf.Len() != 0 {
		t.Fatalf("warned about priced models: %s", buf.String())
	}
	// Under unknownModel: default every model has a price.
	p.UnknownModel = ledger.UnknownDefault
	warnUnpriced(p, slog.New(slog.NewTextHandler(&buf, nil)))([]string{"x"})
	if buf.Len() != 0 {
		t.Fatalf("warned under unknownModel default: %s", buf.String())
	}
}
