package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// UnsupportedError names the schema keywords the engine cannot enforce.
type UnsupportedError struct {
	Keywords []string // each with where it is, e.g. "anyOf (at properties.x)"
}

func (e *UnsupportedError) Error() string {
	return "schema keywords not supported by the embedded engine: " + strings.Join(e.Keywords, ", ")
}

// ErrSchema wraps a schema that is not valid for its supported keywords.
var ErrSchema = errors.New("invalid schema")

// Keywords the compiler enforces or, for annotations, may ignore.
var (
	enforced    = map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true, "minItems": true, "maxItems": true, "minLength": true, "maxLength": true, "enum": true, "const": true}
	annotations = map[string]bool{"title": true, "description": true, "$schema": true, "$id": true, "$comment": true, "default": true, "examples": true}
)

// maxLiterals bounds enum sizes (alive literals are a bitmask).
const maxLiterals = 31

// CompileSchema compiles a JSON Schema (the supported subset: type object
// with properties/required/additionalProperties false, array with items,
// minItems, maxItems, string with minLength, maxLength, number, integer,
// boolean, null, enum, const). Unsupported keywords are an
// *UnsupportedError naming every one; other problems wrap ErrSchema.
func CompileSchema(raw []byte) (*Grammar, error) {
	c := compiler{}
	n, err := c.node(raw, "", 0)
	if len(c.unsupported) > 0 {
		sort.Strings(c.unsupported)
		return nil, &UnsupportedError{Keywords: c.unsupported}
	}
	if err != nil {
		return nil, err
	}
	return &Grammar{root: n}, nil
}

type compiler struct {
	unsupported []string
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return " (at " + path + ")"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *compiler) node(raw []byte, path string, depth int) (*node, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d%s", ErrSchema, MaxDepth, at(path))
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "true" || string(raw) == "{}" {
		return anyValue, nil
	}
	keys, vals, err := objectFields(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s must be an object%s", ErrSchema, "a schema", at(path))
	}
	m := map[string]json.RawMessage{}
	for i, k := range keys {
		m[k] = vals[i]
		if !enforced[k] && !annotations[k] {
			c.unsupported = append(c.unsupported, k+at(path))
		}
	}
	if v, ok := m["const"]; ok {
		lit, err := compact(v)
		if err != nil {
			return nil, fmt.Errorf("%w: const%s: %w", ErrSchema, at(path), err)
		}
		return finish(&node{kind: kLiterals, lits: []string{lit}}), nil
	}
	if v, ok := m["enum"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(v, &items); err != nil || len(items) == 0 {
			return nil, fmt.Errorf("%w: enum must be a non-empty array%s", ErrSchema, at(path))
		}
		if len(items) > maxLiterals {
			c.unsupported = append(c.unsupported, fmt.Sprintf("enum with more than %d values%s", maxLiterals, at(path)))
			return anyValue, nil
		}
		n := &node{kind: kLiterals}
		for _, it := range items {
			lit, err := compact(it)
			if err != nil {
				return nil, fmt.Errorf("%w: enum%s: %w", ErrSchema, at(path), err)
			}
			n.lits = append(n.lits, lit)
		}
		return finish(n), nil
	}
	typ := ""
	if v, ok := m["type"]; ok {
		if err := json.Unmarshal(v, &typ); err != nil {
			c.unsupported = append(c.unsupported, "type other than a single string"+at(path))
			return anyValue, nil
		}
	} else if _, ok := m["properties"]; ok {
		typ = "object"
	}
	intField := func(k string, def int) (int, error) {
		v, ok := m[k]
		if !ok {
			return def, nil
		}
		var x int
		if err := json.Unmarshal(v, &x); err != nil || x < 0 {
			return 0, fmt.Errorf("%w: %s must be a non-negative integer%s", ErrSchema, k, at(path))
		}
		return x, nil
	}
	switch typ {
	case "":
		return anyValue, nil
	case "null":
		return finish(&node{kind: kLiterals, lits: []string{"null"}}), nil
	case "boolean":
		return finish(&node{kind: kLiterals, lits: []string{"true", "false"}}), nil
	case "number":
		return finish(&node{kind: kNumber}), nil
	case "integer":
		return finish(&node{kind: kInteger}), nil
	case "string":
		n := &node{kind: kString}
		var err error
		if n.minLen, err = intField("minLength", 0); err != nil {
			return nil, err
		}
		if n.maxLen, err = intField("maxLength", -1); err != nil {
			return nil, err
		}
		if n.maxLen >= 0 && n.maxLen < n.minLen {
			return nil, fmt.Errorf("%w: maxLength is below minLength%s", ErrSchema, at(path))
		}
		return finish(n), nil
	case "array":
		n := &node{kind: kArray, items: anyValue}
		if v, ok := m["items"]; ok {
			items, err := c.node(v, join(path, "items"), depth+1)
			if err != nil {
				return nil, err
			}
			n.items = items
		}
		var err error
		if n.minItems, err = intField("minItems", 0); err != nil {
			return nil, err
		}
		if n.maxItems, err = intField("maxItems", -1); err != nil {
			return nil, err
		}
		if n.maxItems >= 0 && n.maxItems < n.minItems {
			return nil, fmt.Errorf("%w: maxItems is below minItems%s", ErrSchema, at(path))
		}
		return finish(n), nil
	case "object":
		props, ok := m["properties"]
		if !ok {
			return finish(&node{kind: kObjectAny}), nil
		}
		names, vals, err := objectFields(props)
		if err != nil {
			return nil, fmt.Errorf("%w: properties must be an object%s", ErrSchema, at(path))
		}
		n := &node{kind: kObject}
		seen := map[string]bool{}
		for i, name := range names {
			child, err := c.node(vals[i], join(join(path, "properties"), name), depth+1)
			if err != nil {
				return nil, err
			}
			key, _ := compact(mustJSON(name))
			if i > 0 {
				key = "," + key
			}
			n.keys = append(n.keys, key+":")
			n.props = append(n.props, child)
			seen[name] = true
		}
		if v, ok := m["required"]; ok {
			var req []string
			if err := json.Unmarshal(v, &req); err != nil {
				return nil, fmt.Errorf("%w: required must be an array of strings%s", ErrSchema, at(path))
			}
			for _, r := range req {
				if !seen[r] {
					return nil, fmt.Errorf("%w: required property %q is not among the properties%s", ErrSchema, r, at(path))
				}
			}
		}
		if v, ok := m["additionalProperties"]; ok && string(bytes.TrimSpace(v)) != "false" && string(bytes.TrimSpace(v)) != "true" {
			c.unsupported = append(c.unsupported, "additionalProperties other than true or false"+at(path))
		}
		return finish(n), nil
	}
	c.unsupported = append(c.unsupported, fmt.Sprintf("type %q%s", typ, at(path)))
	return anyValue, nil
}

func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// compact re-encodes a JSON value without whitespace or HTML escaping:
// the exact text the model is held to.
func compact(raw []byte) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// objectFields returns an object's keys in order and their raw values.
func objectFields(raw []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	t, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("not an object")
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data")
	}
	return keys, vals, nil
}

// Alternative is one branch of OneOf: Prefix, a value of Schema, Suffix.
type Alternative struct {
	Prefix, Suffix string
	Schema         []byte // nil: any JSON object
}

// OneOf is a grammar for exactly one of the alternatives, chosen by its
// prefix (prefixes must differ before either ends, as quoted tool names
// do). It holds forced tool calls: prefix `{"name":"f","arguments":`, the
// function's parameters, suffix `}`, in the template's wrapping.
func OneOf(alts []Alternative) (*Grammar, error) {
	if len(alts) == 0 || len(alts) > maxLiterals {
		return nil, fmt.Errorf("%w: between 1 and %d alternatives", ErrSchema, maxLiterals)
	}
	n := &node{kind: kAlts}
	for i, a := range alts {
		for j := range i {
			if strings.HasPrefix(a.Prefix, alts[j].Prefix) || strings.HasPrefix(alts[j].Prefix, a.Prefix) {
				return nil, fmt.Errorf("%w: alternative prefixes %q and %q overlap", ErrSchema, alts[j].Prefix, a.Prefix)
			}
		}
		child := finish(&node{kind: kObjectAny})
		if a.Schema != nil {
			g, err := CompileSchema(a.Schema)
			if err != nil {
				return nil, err
			}
			child = g.root
		}
		if a.Prefix == "" || a.Suffix == "" {
			return nil, fmt.Errorf("%w: alternatives need a prefix and a suffix", ErrSchema)
		}
		n.lits = append(n.lits, a.Prefix)
		n.alts = append(n.alts, child)
		n.suffixes = append(n.suffixes, a.Suffix)
	}
	return &Grammar{root: finish(n)}, nil
}
