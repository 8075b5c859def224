package engine

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/llmctl/llmctl/pkg/serve/engine/gguf"
	"github.com/llmctl/llmctl/pkg/serve/engine/synth"
)

// DemoName is the bundled demo model's name. Its weights are random: it
// answers in fluent-looking nonsense, which is enough to see the whole
// path (keys, limits, billing, streaming) work end to end.
const DemoName = "demo-random-weights"

// demoShape is tiny so the model builds in milliseconds at startup.
var demoShape = synth.Shape{Name: DemoName, Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 192, Context: 2048, RopeBase: 10000}

// demoWords seed the demo vocabulary, so its random choices come out as words.
const demoWords = `the of and to a in is it you that he was for on are with as I his they be at one have
this from or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know water
than call first who may down side been now find any new work part take get place made live where after
back little only round man year came show every good me give our under name very through just form
sentence great think say help low line differ turn cause much mean before move right boy old too same
tell does set three want air well also play small end put home read hand port large spell add even land
here must big high such follow act why ask men change went light kind off need house picture try us
again animal point mother world near build self earth father head stand own page should country found
answer school grow study still learn plant cover food sun four between state keep eye never last let
thought city tree cross farm hard start might story saw far sea draw left late run while press close
night real life few north open seem together next white children begin got walk example ease paper
group always music those both mark often letter until mile river car feet care second book carry took
science eat room friend began idea fish mountain stop once base hear horse cut sure watch color face
wood main enough plain girl usual young ready above ever red list though feel talk bird soon body dog
family direct pose leave song measure door product black short numeral class wind question happen
complete ship area half rock order fire south problem piece told knew pass since top whole king space
heard best hour better true during hundred five remember step early hold west ground interest reach
fast verb sing listen six table travel less morning ten simple several vowel toward war lay against
pattern slow center love person money serve appear road map rain rule govern pull cold notice voice
unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field
rest correct able pound done beauty drive stood contain front teach week final gave green oh quick
develop ocean warm free minute strong special mind behind clear tail produce fact street inch multiply
nothing course stay wheel full force blue object decide surface deep moon island foot system busy test
record boat common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate
miss brought heat snow tire bring yes distant fill east paint language among`

// demoVocab is a SentencePiece-style vocabulary of our own: the three
// special tokens, the words above and punctuation. It has no byte-fallback
// tokens, so text outside it is dropped by the tokenizer (as llama.cpp does
// for such vocabularies) and every output token is printable.
func demoVocab() *gguf.File {
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int32{2, 3, 3}
	scores := []float32{0, 0, 0}
	seen := map[string]bool{}
	for i, w := range strings.Fields(demoWords) {
		for _, t := range []string{"\u2581" + w, w} {
			if seen[t] {
				continue
			}
			seen[t] = true
			tokens = append(tokens, t)
			types = append(types, 1)
			scores = append(scores, -float32(i))
		}
	}
	for _, p := range strings.Split(".,!?;:'\"-()\u2581", "") {
		if !seen[p] {
			tokens = append(tokens, p)
			types = append(types, 1)
			scores = append(scores, -10000)
		}
	}
	var w gguf.Writer
	w.Set("tokenizer.ggml.model", "llama")
	w.Set("tokenizer.ggml.tokens", tokens)
	w.Set("tokenizer.ggml.scores", scores)
	w.Set("tokenizer.ggml.token_type", types)
	w.Set("tokenizer.ggml.bos_token_id", uint32(1))
	w.Set("tokenizer.ggml.eos_token_id", uint32(2))
	w.Set("tokenizer.ggml.unknown_token_id", uint32(0))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		panic(err) // writing to memory cannot fail
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		panic(fmt.Sprintf("engine: demo vocabulary does not parse: %v", err))
	}
	return f
}

// WriteDemo writes the demo model as a GGUF file: what OpenDemo serves, for
// tests and for anyone who wants to look at it with other tools.
func WriteDemo(w io.Writer) error {
	return synth.Write(w, demoShape, demoVocab(), demoSeed)
}

// demoSeed fixes the demo's weights, so it is the same model every time.
const demoSeed = 2024

// OpenDemo builds the bundled demo model in memory (a fixed seed, so it is
// the same model every time) and serves it as DemoName.
func OpenDemo(opts Options) (*Backend, error) {
	var buf bytes.Buffer
	if err := WriteDemo(&buf); err != nil {
		return nil, fmt.Errorf("engine: demo model: %w", err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("engine: demo model: %w", err)
	}
	if opts.Name == "" {
		opts.Name = DemoName
	}
	return newBackend(f, func() error { return nil }, opts)
}
