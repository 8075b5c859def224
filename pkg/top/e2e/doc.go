// Package e2e runs the built `llmctl top` in tmux against a real `llmctl
// serve` (with an upstream test double behind it, live traffic and a
// populated ledger) and reads the numbers off the screen with capture-pane.
package e2e
