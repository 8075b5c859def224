// Package deploy is `llmctl up` and `llmctl down`: the embedded gateway chart
// installed or upgraded with the Helm SDK, and a rollout watcher.
package deploy
