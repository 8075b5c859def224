package model_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/model"
)

// TestLoadRefusesBadModels: hostile or unsupported metadata gives ErrModel,
// without allocating for absurd counts.
func TestLoadRefusesBadModels(t *testing.T) {
	good := map[string]any{
		"general.architecture":          "llama",
		"llama.embedding_length":        uint32(64),
		"llama.block_count":             uint32(1),
		"llama.attention.head_count":    uint32(4),
		"llama.feed_forward_length":     uint32(128),
		"llama.rope.dimension_count":    uint32(16),
		"llama.attention.head_count_kv": uint32(2),
	}
	for name, change := range map[string]map[string]any{
		"architecture": {"general.architecture": "gpt-j"},
		"huge blocks":  {"llama.block_count": uint32(1 << 24)},
		"zero heads":   {"llama.attention.head_count": uint32(0)},
		"bad gqa":      {"llama.attention.head_count_kv": uint32(3)},
		"rope dims":    {"llama.rope.dimension_count": uint32(64)},
		"no tensors":   {},
	} {
		t.Run(name, func(t *testing.T) {
			var w gguf.Writer
			for k, v := range good {
				if c, ok := change[k]; ok {
					v = c
				}
				w.Set(k, v)
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := model.Load(f); !errors.Is(err, model.ErrModel) {
				t.Fatalf("got %v, want ErrModel", err)
			}
		})
	}
}
