package demo

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
)

// HeldOutForTest reads the held-out verses in testdata (for this package's
// tests and demo_test's): the only corpus in the repository.
func HeldOutForTest(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/heldout.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := ReadVerses(f)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadVerses(t *testing.T) {
	in := "Ge1:1 In the beginning God created the heaven and the earth.\n\n1Co13:4  Charity suffereth long,  and is kind;\nplain line\n"
	v, err := ReadVerses(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"In the beginning God created the heaven and the earth.", "Charity suffereth long, and is kind;", "plain line"}
	if strings.Join(v, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", v)
	}
	train, held := Split(make([]string, 3*HeldOut))
	if len(held) != 3 || len(train) != 3*HeldOut-3 {
		t.Fatalf("split %d/%d", len(train), len(held))
	}
}

// TestVocab: the learned vocabulary has the requested size, frequent words
// as single tokens, and splits every corpus word without byte fallback.
func TestVocab(t *testing.T) {
	verses := HeldOutForTest(t)
	v, err := BuildVocab(verses, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Tokens) != 1500 {
		t.Fatalf("%d tokens", len(v.Tokens))
	}
	tok, err := v.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"▁the", "▁LORD", "▁and", "▁unto"} {
		if _, ok := tok.Lookup(w); !ok {
			t.Errorf("%q is not a token", w)
		}
	}
	ids := tok.Encode("And the LORD said unto Moses,", false, false)
	if got := tok.Decode(ids); got != "And the LORD said unto Moses," {
		t.Fatalf("round trip %q", got)
	}
	for _, s := range verses[:100] {
		for _, id := range tok.Encode(s, false, false) {
			if id < firstByte+256 {
				t.Fatalf("%q needs byte fallback (token %d)", s, id)
			}
		}
	}
	again, _ := BuildVocab(verses, 1500)
	if strings.Join(again.Tokens, " ") != strings.Join(v.Tokens, " ") {
		t.Fatal("vocabulary is not deterministic")
	}
}

var tiny = Config{Vocab: 600, Embd: 32, Heads: 4, FF: 64, Context: 128, RopeBase: 10, SeqLen: 48, Batch: 4, Steps: 120, LR: 1e-2, Seed: 3}

// TestTrainTiny runs the trainer on the held-out verses (the corpus that is
// in the repository) with a tiny shape: the loss must fall well below the
// untrained model's, training must be deterministic, and the engine must
// compute from the written file what the trainer computed.
func TestTrainTiny(t *testing.T) {
	verses := HeldOutForTest(t)
	untrained := tiny
	untrained.Steps = 0
	m0, err := Train(t.Context(), verses, untrained, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Train(t.Context(), verses, tiny, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := m.Vocab.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	// verses that fit one training sequence, scored the same way by both
	var short []string
	for _, v := range verses {
		if n := len(tok.Encode(v, true, false)); n <= tiny.SeqLen && len(short) < 60 {
			short = append(short, v)
		}
	}
	before, err := m0.NLL(short)
	if err != nil {
		t.Fatal(err)
	}
	after, err := m.NLL(short)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tiny model NLL on its corpus: untrained %.3f, trained %.3f nats/token", before, after)
	if after > before-1 {
		t.Fatalf("training did not lower the loss enough: %.3f -> %.3f", before, after)
	}
	var a, b bytes.Buffer
	if _, err := m.WriteTo(&a); err != nil {
		t.Fatal(err)
	}
	m2, err := Train(t.Context(), verses, tiny, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two trainings with one seed wrote different files")
	}
	f, err := gguf.Parse(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	engine, err := EngineNLL(f, short)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(engine-after) > 0.03 {
		t.Fatalf("engine NLL %.4f, trainer %.4f: the file does not compute what was trained", engine, after)
	}
}
