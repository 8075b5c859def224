package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrSignature covers every reason a delivery is not authentic: missing or
// malformed headers, a stale timestamp, or no signature matching any secret.
var ErrSignature = errors.New("webhook signature")

// VerifyStripe checks a Stripe-Signature header ("t=…,v1=…,v1=…") against
// the raw body: HMAC-SHA256 keyed by each configured secret over
// "t.body", compared in constant time with every v1 value, and the
// timestamp within tolerance of now.
func VerifyStripe(body []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	var (
		ts   string
		sigs [][]byte
	)
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: Stripe-Signature needs t= and at least one v1=", ErrSignature)
	}
	if err := fresh(ts, tolerance, now); err != nil {
		return err
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return anyMatch(keys, sigs, []byte(ts), []byte{'.'}, body)
}

// VerifyStandard checks a Standard Webhooks delivery: webhook-signature is a
// space-separated list of "v1,<base64 HMAC-SHA256>" over "id.timestamp.body"
// keyed by the base64 part of a "whsec_" secret.
func VerifyStandard(body []byte, id, ts, header string, secrets [][]byte, tolerance time.Duration, now time.Time) error {
	if id == "" || ts == "" || header == "" {
		return fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", ErrSignature)
	}
	if err := fresh(ts, tolerance, now); err != nil {
		return err
	}
	var sigs [][]byte
	for _, part := range strings.Fields(header) {
		v, s, ok := strings.Cut(part, ",")
		if !ok || v != "v1" {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(s); err == nil {
			sigs = append(sigs, b)
		}
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature in webhook-signature", ErrSignature)
	}
	return anyMatch(secrets, sigs, []byte(id), []byte{'.'}, []byte(ts), []byte{'.'}, body)
}

// anyMatch computes HMAC-SHA256 of the concatenated parts under each key
// and compares it in constant time with every presented signature.
func anyMatch(keys, sigs [][]byte, parts ...[]byte) error {
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		for _, p := range parts {
			mac.Write(p)
		}
		want := mac.Sum(nil)
		for _, s := range sigs {
			if hmac.Equal(want, s) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no v1 signature matches a configured secret", ErrSignature)
}

// StandardSecret decodes a "whsec_<base64>" secret into its key.
func StandardSecret(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("standard webhooks secret: want whsec_<base64>: %w", err)
	}
	return b, nil
}

func fresh(ts string, tolerance time.Duration, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrSignature, ts)
	}
	age := now.Sub(time.Unix(sec, 0))
	if age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: timestamp %s is outside the %s tolerance", ErrSignature, time.Unix(sec, 0).UTC().Format(time.RFC3339), tolerance)
	}
	return nil
}
