// Package decodeerr words JSON and YAML decoding errors in the terms of the
// document a user wrote (the field, what was expected, what was found),
// instead of the Go types they were decoded into: "messages[0].role:
// expected a string, got a number", not "cannot unmarshal number into Go
// struct field .role of type string".
package decodeerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// JSON describes an error of encoding/json (or of sigs.k8s.io/yaml, which
// decodes through it). Errors it does not know are returned as they are.
func JSON(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := te.Value
		if i := strings.IndexByte(got, ' '); i > 0 { // "number 1.5"
			got = got[:i] + " (" + got[i+1:] + ")"
		}
		msg := fmt.Sprintf("expected %s, got %s", expected(te.Type), article(got))
		if te.Field != "" {
			return te.Field + ": " + msg
		}
		return msg
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return strings.NewReplacer("json: ", "", "error unmarshaling JSON: while decoding JSON: ", "").Replace(err.Error())
}

// expected names what a value of t looks like in a document.
func expected(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 30s or 1m"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return expected(t.Elem())
	}
	return "another type"
}

func article(v string) string {
	switch {
	case v == "":
		return "something else"
	case strings.ContainsAny(v[:1], "aeiou"):
		return "an " + v
	}
	return "a " + v
}

// The lines of a yaml.v3 *yaml.TypeError this package rewords.
var (
	yamlUnknown = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlType    = regexp.MustCompile("cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (\\S+)")
)

// yamlTags names YAML's core tags as a user wrote them.
var yamlTags = map[string]string{"str": "a string", "int": "an integer", "float": "a number",
	"bool": "true or false", "seq": "a list", "map": "a mapping", "null": "nothing", "timestamp": "a date"}

// YAML describes a yaml.v3 decoding error line by line.
func YAML(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		l = yamlUnknown.ReplaceAllString(l, "unknown key $1")
		if m := yamlType.FindStringSubmatch(l); m != nil {
			got := yamlTags[m[1]]
			if got == "" {
				got = m[1]
			}
			if m[2] != "" {
				got += fmt.Sprintf(" (%s)", m[2])
			}
			l = strings.Replace(l, m[0], fmt.Sprintf("expected %s, got %s", yamlWant(m[3]), got), 1)
		}
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "; ")
}

// yamlWant names the Go type yaml.v3 printed as what the document needed.
func yamlWant(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 30s or 1m"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping" // structs and maps
}

// Error is a decoding error worded for the user; Unwrap gives the original.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// WrapJSON is JSON as an error (nil for nil).
func WrapJSON(err error) error {
	if err == nil {
		return nil
	}
	return &Error{msg: JSON(err), err: err}
}

// WrapYAML is YAML as an error (nil for nil).
func WrapYAML(err error) error {
	if err == nil {
		return nil
	}
	return &Error{msg: YAML(err), err: err}
}
