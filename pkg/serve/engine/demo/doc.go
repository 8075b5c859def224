// Package demo trains llmctl's bundled demo model: a small llama-architecture
// model of the King James Bible (public domain; Debian package bible-kjv-text),
// written as a GGUF file with the engine's own writer and served by
// `llmctl serve` when no other model is configured.
//
// What is trained and what is set by hand (see docs/engine.md, "Demo
// model"): a SentencePiece-style BPE vocabulary is learned from the corpus;
// the token embeddings, the value and output projections of the attention,
// the feed-forward block and the output matrix are trained by backpropagation
// (softmax cross-entropy, Adam). The attention queries and keys are not
// trained: they are set so that, through RoPE alone, seven heads look at the
// tokens one to seven places back and the eighth averages the whole
// context. The result is a neural n-gram model in transformer clothing that
// any llama runtime (the engine, llama.cpp) executes as an ordinary model.
package demo
