package chat

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ardanlabs/jinja"
)

// tojsonName is what the templates' tojson filter is renamed to before
// compiling (rewriteTojson): ardanlabs/jinja looks its own filters up
// first and offers no way to replace one, and its tojson(indent=N) goes
// through Go maps (keys sorted, <, > and & escaped) and ignores sort_keys
// and ensure_ascii. The renamed filter is handed to every render as a
// variable, which the library looks up when a filter is not its own.
const tojsonName = "llmctl_tojson"

// rewriteTojson renames "| tojson" inside the template's {{ }} and {% %}
// tags (not in literal text, comments, string literals or raw blocks).
func rewriteTojson(src string) string {
	if !strings.Contains(src, "tojson") {
		return src
	}
	var b strings.Builder
	b.Grow(len(src) + 64)
	for i := 0; i < len(src); {
		open := strings.Index(src[i:], "{")
		if open < 0 || i+open+1 >= len(src) {
			b.WriteString(src[i:])
			break
		}
		open += i
		b.WriteString(src[i:open])
		var end string
		switch src[open+1] {
		case '{':
			end = "}}"
		case '%':
			end = "%}"
		case '#':
			end = "#}"
		default:
			b.WriteByte('{')
			i = open + 1
			continue
		}
		if end == "#}" {
			j := strings.Index(src[open:], end)
			if j < 0 {
				b.WriteString(src[open:])
				break
			}
			b.WriteString(src[open : open+j+2])
			i = open + j + 2
			continue
		}
		tag, next := scanTag(src, open, end)
		b.WriteString(tag)
		i = next
		if end == "%}" && isRaw(tag) {
			// Copy a raw block up to its {% endraw %} unchanged.
			j := strings.Index(src[i:], "endraw")
			if j < 0 {
				b.WriteString(src[i:])
				break
			}
			k := strings.Index(src[i+j:], "%}")
			if k < 0 {
				b.WriteString(src[i:])
				break
			}
			b.WriteString(src[i : i+j+k+2])
			i += j + k + 2
		}
	}
	return b.String()
}

// scanTag copies the tag opened at src[open] up to its closing end (outside
// string literals), renaming tojson filters, and returns where it stopped.
func scanTag(src string, open int, end string) (string, int) {
	var b strings.Builder
	b.WriteString(src[open : open+2])
	var quote byte
	i := open + 2
	for i < len(src) {
		c := src[i]
		switch {
		case quote != 0:
			b.WriteByte(c)
			if c == '\\' && i+1 < len(src) {
				b.WriteByte(src[i+1])
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
			b.WriteByte(c)
		case strings.HasPrefix(src[i:], end):
			b.WriteString(end)
			return b.String(), i + len(end)
		case c == '|':
			j := i + 1
			for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r') {
				j++
			}
			if strings.HasPrefix(src[j:], "tojson") && (j+6 == len(src) || !identByte(src[j+6])) {
				b.WriteString(src[i:j])
				b.WriteString(tojsonName)
				i = j + 6
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
		i++
	}
	return b.String(), len(src)
}

func identByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isRaw(tag string) bool {
	if len(tag) < 4 || !strings.HasSuffix(tag, "%}") {
		return false // unclosed
	}
	return strings.Trim(tag[2:len(tag)-2], " \t\r\n-+") == "raw"
}

// tojson is the tojson filter as transformers defines it for chat
// templates (json.dumps with ensure_ascii=False, indent=None,
// separators=None, sort_keys=False as defaults), which @huggingface/jinja
// follows: object keys in their order unless sort_keys, ", " and ": "
// between items and keys (",", ": " with an indent), nothing HTML-escaped.
func tojson(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson needs a value")
	}
	o := jsonOpts{item: ", ", key: ": "}
	if v, ok := kwargs["indent"]; ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsInt() || v.AsInt() < 0 || v.AsInt() > 64 {
			return jinja.Undefined(), errors.New("tojson: indent must be a small non-negative integer")
		}
		// As the reference: indent=0 means none.
		if v.AsInt() > 0 {
			o.indent, o.item = strings.Repeat(" ", int(v.AsInt())), ","
		}
	}
	for name, dst := range map[string]*bool{"sort_keys": &o.sort, "ensure_ascii": &o.ascii} {
		if v, ok := kwargs[name]; ok && !v.IsNone() && !v.IsUndefined() {
			if !v.IsBool() {
				return jinja.Undefined(), errors.New("tojson: " + name + " must be a boolean")
			}
			*dst = v.AsBool()
		}
	}
	if v, ok := kwargs["separators"]; ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Get(0).IsString() || !v.AsList().Get(1).IsString() {
			return jinja.Undefined(), errors.New("tojson: separators must be two strings")
		}
		o.item, o.key = v.AsList().Get(0).AsString(), v.AsList().Get(1).AsString()
	}
	var b strings.Builder
	if err := o.encode(&b, args[0], 0); err != nil {
		return jinja.Undefined(), err
	}
	return jinja.NewString(b.String()), nil
}

type jsonOpts struct {
	indent      string
	item, key   string
	sort, ascii bool
}

// maxJSONDepth bounds nesting (template values come from request JSON,
// already bounded by FromJSON; this guards a self-referencing dict).
const maxJSONDepth = 1000

func (o *jsonOpts) encode(b *strings.Builder, v jinja.Value, depth int) error {
	if depth > maxJSONDepth {
		return errors.New("tojson: value nested too deeply")
	}
	pad := func(d int) {
		if o.indent != "" {
			b.WriteByte('\n')
			for range d {
				b.WriteString(o.indent)
			}
		}
	}
	switch {
	case v.IsNone() || v.IsUndefined() || v.IsCallable():
		b.WriteString("null")
	case v.IsBool():
		b.WriteString(strconv.FormatBool(v.AsBool()))
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		s, err := pyFloat(v.AsFloat())
		if err != nil {
			return err
		}
		b.WriteString(s)
	case v.IsString():
		o.str(b, v.AsString())
	case v.IsList():
		items := v.AsList().Items
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteString(o.item)
			}
			pad(depth + 1)
			if err := o.encode(b, it, depth+1); err != nil {
				return err
			}
		}
		if len(items) > 0 {
			pad(depth)
		}
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		keys := d.Keys
		if o.sort {
			keys = slices.Sorted(slices.Values(keys)) // code point order, as Python sorts str
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(o.item)
			}
			pad(depth + 1)
			o.str(b, k)
			b.WriteString(o.key)
			val, _ := d.Get(k)
			if err := o.encode(b, val, depth+1); err != nil {
				return err
			}
		}
		if len(keys) > 0 {
			pad(depth)
		}
		b.WriteByte('}')
	default:
		b.WriteString("null")
	}
	return nil
}

// str writes s as json.dumps does: quotes, backslashes and control
// characters escaped; other characters as they are, or as \uXXXX (UTF-16
// surrogate pairs beyond the BMP) with ensure_ascii.
func (o *jsonOpts) str(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[(r>>shift)&0xf])
		}
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			u4(r)
		case o.ascii && r >= 0x7f:
			if r > 0xffff {
				r -= 0x10000
				u4(0xd800 + r>>10)
				u4(0xdc00 + r&0x3ff)
			} else {
				u4(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// pyFloat formats f as Python's json.dumps does (repr): the shortest
// digits that read back, fixed notation with ".0" for whole numbers
// between 1e-4 and 1e16, scientific (two-digit exponent at least) outside.
func pyFloat(f float64) (string, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", errors.New("tojson: cannot write infinity or NaN as JSON")
	}
	if a := math.Abs(f); a == 0 || a >= 1e-4 && a < 1e16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.ContainsRune(s, '.') {
			s += ".0"
		}
		return s, nil
	}
	return strconv.FormatFloat(f, 'e', -1, 64), nil
}
