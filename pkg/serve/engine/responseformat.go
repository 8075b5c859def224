package engine

import (
	"encoding/json"
	"errors"

	"github.com/llmctl/llmctl/pkg/serve/engine/grammar"
	"github.com/llmctl/llmctl/pkg/serve/engine/tokenizer"
)

// responseGrammar compiles response_format into the grammar the answer is
// held to, or nil for plain text.
func responseGrammar(raw json.RawMessage) (*grammar.Grammar, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
			Strict *bool           `json:"strict"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return nil, badParam("response_format", "response_format must be an object with a type")
	}
	switch rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		return grammar.JSONObject(), nil
	case "json_schema":
		if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 {
			return nil, badParam("response_format", "response_format json_schema needs json_schema.schema")
		}
		g, err := grammar.CompileSchema(rf.JSONSchema.Schema)
		var ue *grammar.UnsupportedError
		switch {
		case errors.As(err, &ue):
			return nil, badParam("response_format", "response_format.json_schema.schema: %v (it enforces type, properties, required, additionalProperties, items, minItems, maxItems, minLength, maxLength, enum and const)", ue)
		case err != nil:
			return nil, badParam("response_format", "response_format.json_schema.schema: %v", err)
		}
		return g, nil
	}
	return nil, badParam("response_format", "response_format type must be text, json_object or json_schema, not %q", rf.Type)
}

// grammarVocab is the tokenizer's pieces as the scheduler emits them.
func grammarVocab(tok *tokenizer.Tokenizer) *grammar.Vocab {
	pieces := make([][]byte, tok.VocabSize())
	for id := range pieces {
		pieces[id] = tok.Piece(int32(id), false)
	}
	return grammar.NewVocab(pieces, tok.IsEOG)
}
