package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
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
	enforced    = map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true, "minItems": true, "maxItems": true, "minLength": true, "maxLength": true, "enum": true, "const": true, "anyOf": true, "oneOf": true, "$ref": true}
	annotations = map[string]bool{"title": true, "description": true, "$schema": true, "$id": true, "$comment": true, "default": true, "examples": true,
		"$defs": true, "definitions": true} // definitions count where a $ref uses them
)

// maxLiterals bounds enum sizes (alive literals are a bitmask).
const maxLiterals = 31

// CompileSchema compiles a JSON Schema (the supported subset: type object
// with properties/required/additionalProperties false, array with items,
// minItems, maxItems, string with minLength, maxLength, number, integer,
// boolean, null, enum, const, anyOf, oneOf whose alternatives cannot both
// match, and $ref to this schema's own parts such as $defs). Unsupported
// keywords are an *UnsupportedError naming every one; other problems wrap
// ErrSchema.
//
// A recursive $ref is followed MaxRecursion times within itself (and no
// deeper than MaxDepth); there the recursion is cut: an optional property
// or an array's items that would recurse further are left out, and a
// schema that cannot be written without recursing further is refused.
func CompileSchema(raw []byte) (*Grammar, error) {
	c := compiler{root: raw, refs: map[string]*node{}, active: map[string]int{}}
	n, err := c.node(raw, "", 0)
	if len(c.unsupported) > 0 {
		sort.Strings(c.unsupported)
		return nil, &UnsupportedError{Keywords: slices.Compact(c.unsupported)}
	}
	if err != nil {
		return nil, err
	}
	if n.kind == kNever {
		return nil, fmt.Errorf("%w: the schema has no value within the engine's bounds (a $ref recursing more than %d times into itself, or values nested %d deep, is required)", ErrSchema, MaxRecursion, MaxDepth)
	}
	return &Grammar{root: n}, nil
}

// MaxRecursion bounds how often a $ref is followed within itself.
const MaxRecursion = 4

type compiler struct {
	unsupported []string
	root        []byte
	// refs are compiled $ref targets, by ref, depth and the refs being
	// followed (copies of a recursive definition differ where it is cut).
	refs   map[string]*node
	active map[string]int // $refs being followed, and how many times
	inRef  int            // how many $refs the node being compiled is under
}

// JSON types, as a set, for telling oneOf alternatives apart.
const (
	tObject uint8 = 1 << iota
	tArray
	tString
	tNumber // integers too
	tBool
	tNull
	tAll = tObject | tArray | tString | tNumber | tBool | tNull
)

var typeBits = map[string]uint8{"object": tObject, "array": tArray, "string": tString, "number": tNumber, "integer": tNumber, "boolean": tBool, "null": tNull}

// neverNode has no value: a recursion cut at the depth bound.
var neverNode = finish(&node{kind: kNever})

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
	if depth >= MaxDepth && c.inRef > 0 {
		return neverNode, nil
	}
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
	// $ref, anyOf and oneOf stand alone (annotations aside).
	for _, kw := range []string{"$ref", "anyOf", "oneOf"} {
		v, ok := m[kw]
		if !ok {
			continue
		}
		for _, k := range keys {
			if k != kw && enforced[k] {
				c.unsupported = append(c.unsupported, k+" beside "+kw+at(path))
			}
		}
		if kw == "$ref" {
			return c.ref(v, path, depth)
		}
		return c.anyOf(kw, v, path, depth)
	}
	if v, ok := m["const"]; ok {
		lit, err := compact(v)
		if err != nil {
			return nil, fmt.Errorf("%w: const%s: %w", ErrSchema, at(path), err)
		}
		return literals([]string{lit}), nil
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
		return literals(n.lits), nil
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
	_, explicit := m["type"]
	switch typ {
	case "":
		return anyValue, nil
	case "null":
		return literals([]string{"null"}), nil
	case "boolean":
		return literals([]string{"true", "false"}), nil
	case "number":
		return finish(&node{kind: kNumber, types: tNumber}), nil
	case "integer":
		return finish(&node{kind: kInteger, types: tNumber}), nil
	case "string":
		n := &node{kind: kString, types: tString}
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
		n := &node{kind: kArray, items: anyValue, types: tArray}
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
		if n.items.kind == kNever { // recursion cut: no items
			if n.minItems > 0 {
				return neverNode, nil
			}
			n.maxItems = 0
		}
		return finish(n), nil
	case "object":
		var types uint8 = tObject
		if !explicit {
			types = tAll // properties alone hold only for objects
		}
		props, ok := m["properties"]
		if !ok {
			return finish(&node{kind: kObjectAny, types: types}), nil
		}
		names, vals, err := objectFields(props)
		if err != nil {
			return nil, fmt.Errorf("%w: properties must be an object%s", ErrSchema, at(path))
		}
		required := map[string]bool{}
		if v, ok := m["required"]; ok {
			var req []string
			if err := json.Unmarshal(v, &req); err != nil {
				return nil, fmt.Errorf("%w: required must be an array of strings%s", ErrSchema, at(path))
			}
			for _, r := range req {
				if !slices.Contains(names, r) {
					return nil, fmt.Errorf("%w: required property %q is not among the properties%s", ErrSchema, r, at(path))
				}
				required[r] = true
			}
		}
		n := &node{kind: kObject, types: types}
		for i, name := range names {
			child, err := c.node(vals[i], join(join(path, "properties"), name), depth+1)
			if err != nil {
				return nil, err
			}
			if child.kind == kNever { // recursion cut
				if required[name] {
					return neverNode, nil
				}
				continue
			}
			key, _ := compact(mustJSON(name))
			if len(n.keys) > 0 {
				key = "," + key
			}
			n.keys = append(n.keys, key+":")
			n.names = append(n.names, name)
			n.props = append(n.props, child)
		}
		if v, ok := m["additionalProperties"]; ok && string(bytes.TrimSpace(v)) != "false" && string(bytes.TrimSpace(v)) != "true" {
			c.unsupported = append(c.unsupported, "additionalProperties other than true or false"+at(path))
		}
		return finish(n), nil
	}
	c.unsupported = append(c.unsupported, fmt.Sprintf("type %q%s", typ, at(path)))
	return anyValue, nil
}

// literals is an enum's node; its types are those of its values.
func literals(lits []string) *node {
	n := &node{kind: kLiterals, lits: lits}
	for _, l := range lits {
		switch l[0] {
		case '{':
			n.types |= tObject
		case '[':
			n.types |= tArray
		case '"':
			n.types |= tString
		case 't', 'f':
			n.types |= tBool
		case 'n':
			n.types |= tNull
		default:
			n.types |= tNumber
		}
	}
	return finish(n)
}

// ref compiles a $ref to a part of this schema (a JSON pointer fragment).
func (c *compiler) ref(v json.RawMessage, path string, depth int) (*node, error) {
	var ref string
	if err := json.Unmarshal(v, &ref); err != nil {
		return nil, fmt.Errorf("%w: $ref must be a string%s", ErrSchema, at(path))
	}
	if ref != "#" && !strings.HasPrefix(ref, "#/") {
		c.unsupported = append(c.unsupported, fmt.Sprintf("$ref %q outside this schema (only \"#/...\" refs)%s", ref, at(path)))
		return anyValue, nil
	}
	if c.active[ref] >= MaxRecursion {
		return neverNode, nil
	}
	active := make([]string, 0, len(c.active))
	for r, k := range c.active {
		active = append(active, fmt.Sprintf("%q=%d", r, k))
	}
	sort.Strings(active)
	key := fmt.Sprintf("%q@%d:%s", ref, depth, strings.Join(active, ","))
	if n, ok := c.refs[key]; ok {
		return n, nil
	}
	target, tpath, err := pointer(c.root, ref)
	if err != nil {
		return nil, fmt.Errorf("%w: $ref %q: %v%s", ErrSchema, ref, err, at(path))
	}
	c.active[ref]++
	c.inRef++
	n, err := c.node(target, tpath, depth)
	c.inRef--
	if c.active[ref]--; c.active[ref] == 0 {
		delete(c.active, ref)
	}
	if err != nil {
		return nil, err
	}
	c.refs[key] = n
	return n, nil
}

// pointer resolves a "#/a/b" JSON pointer in root; the path names it for
// messages ("a.b").
func pointer(root []byte, ref string) ([]byte, string, error) {
	cur := root
	if ref == "#" {
		return cur, "", nil
	}
	var path []string
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		if t, err := url.PathUnescape(tok); err == nil {
			tok = t
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		path = append(path, tok)
		var next json.RawMessage
		if keys, vals, err := objectFields(cur); err == nil {
			if i := slices.Index(keys, tok); i >= 0 {
				next = vals[i]
			}
		} else {
			var items []json.RawMessage
			i, aerr := strconv.Atoi(tok)
			if json.Unmarshal(cur, &items) == nil && aerr == nil && i >= 0 && i < len(items) {
				next = items[i]
			}
		}
		if next == nil {
			return nil, "", fmt.Errorf("nothing at %s", strings.Join(path, "."))
		}
		cur = next
	}
	return cur, strings.Join(path, "."), nil
}

// anyOf compiles anyOf, and oneOf when no value can match two of its
// alternatives (then any one that matches is the one).
func (c *compiler) anyOf(kw string, v json.RawMessage, path string, depth int) (*node, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil || len(items) == 0 {
		return nil, fmt.Errorf("%w: %s must be a non-empty array of schemas%s", ErrSchema, kw, at(path))
	}
	if len(items) > maxRuns {
		c.unsupported = append(c.unsupported, fmt.Sprintf("%s with more than %d alternatives%s", kw, maxRuns, at(path)))
		return anyValue, nil
	}
	n := &node{kind: kAnyOf}
	cut := false
	for i, it := range items {
		a, err := c.node(it, join(path, fmt.Sprintf("%s.%d", kw, i)), depth)
		if err != nil {
			return nil, err
		}
		if a.kind == kNever {
			cut = true
			continue
		}
		n.alts = append(n.alts, a)
		n.types |= a.types
	}
	if kw == "oneOf" {
		overlap := cut && len(n.alts) > 0
		for i := range n.alts {
			for j := range i {
				overlap = overlap || !disjoint(n.alts[i], n.alts[j])
			}
		}
		if overlap {
			c.unsupported = append(c.unsupported, "oneOf whose alternatives may both match (differing types, const/enum values or a property with such values tell them apart)"+at(path))
			return anyValue, nil
		}
	}
	switch len(n.alts) {
	case 0:
		return neverNode, nil
	case 1:
		return n.alts[0], nil
	}
	return finish(n), nil
}

// disjoint reports whether no value can match both a and b (false when
// unsure). Values written for an object schema carry all its properties.
func disjoint(a, b *node) bool {
	switch {
	case a.types&b.types == 0:
		return true
	case a.kind == kAnyOf:
		return !slices.ContainsFunc(a.alts, func(x *node) bool { return !disjoint(x, b) })
	case b.kind == kAnyOf:
		return disjoint(b, a)
	case a.kind == kLiterals && b.kind == kLiterals:
		for _, x := range a.lits {
			for _, y := range b.lits {
				if sameLiteral(x, y) {
					return false
				}
			}
		}
		return true
	case a.kind == kObject && b.kind == kObject:
		for i, name := range a.names {
			if j := slices.Index(b.names, name); j >= 0 && disjoint(a.props[i], b.props[j]) {
				return true
			}
		}
	}
	return false
}

// sameLiteral compares compact JSON values, numbers by value (1 = 1.0).
func sameLiteral(x, y string) bool {
	if x == y {
		return true
	}
	fx, ex := strconv.ParseFloat(x, 64)
	fy, ey := strconv.ParseFloat(y, 64)
	return ex == nil && ey == nil && fx == fy
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
