package ledger

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Micros is an amount of money in millionths of the currency unit. Money is
// never a float anywhere in llmctl: 1.5 units is Micros(1_500_000).
type Micros int64

// Unit is one whole currency unit.
const Unit Micros = 1_000_000

// String formats m as a decimal with six fractional digits, e.g. "-1.500000".
func (m Micros) String() string {
	sign := ""
	u := uint64(m)
	if m < 0 {
		sign = "-"
		u = uint64(-(m + 1)) + 1 // avoids overflow for math.MinInt64
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/1_000_000, u%1_000_000)
}

// ErrAmount reports an amount that is not a decimal with at most six
// fractional digits, or does not fit.
var ErrAmount = errors.New("invalid amount")

// ParseMicros reads a decimal amount of currency units ("12", "-0.25",
// "3.000001") exactly. More than six fractional digits is an error rather
// than a silent rounding.
func ParseMicros(s string) (Micros, error) {
	in := s
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && frac == "" || hasDot && frac == "" || len(frac) > 6 || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w %q: want a decimal with at most 6 fractional digits", ErrAmount, in)
	}
	var w uint64
	if whole != "" {
		var err error
		if w, err = strconv.ParseUint(whole, 10, 63); err != nil || w > math.MaxInt64/1_000_000 {
			return 0, fmt.Errorf("%w %q: too large", ErrAmount, in)
		}
	}
	f := uint64(0)
	if frac != "" {
		v, _ := strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 32)
		f = v
	}
	v := int64(w*1_000_000 + f)
	if v < 0 {
		return 0, fmt.Errorf("%w %q: too large", ErrAmount, in)
	}
	if neg {
		v = -v
	}
	return Micros(v), nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
