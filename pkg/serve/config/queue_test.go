package config

import (
	"strings"
	"testing"
	"time"
)

func TestQueueSection(t *testing.T) {
	c := Defaults("sqlite:x.db")
	doc := "queue:\n  maxWait: 5s\n  maxDepth: 10\n  priorities: {acme: high, batch: low}\n  weights: {acme: 3}\n"
	if err := c.MergeFile("serve.yaml", strings.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Queue.MaxWait != 5*time.Second || c.Queue.MaxDepth != 10 || c.Queue.Priorities["batch"] != "low" || c.Queue.Weights["acme"] != 3 {
		t.Fatalf("queue %+v", c.Queue)
	}
	if err := c.MergeFile("serve.yaml", strings.NewReader("queue:\n  maxwait: 1s\n")); err == nil {
		t.Error("a misspelt queue key was accepted")
	}

	if err := c.MergeFile("serve.yaml", strings.NewReader("fallbacks: {big: [small]}\nqueue: {fallbackOnQueue: true}\n")); err != nil {
		t.Fatal(err)
	}
	if c.Fallbacks["big"][0] != "small" || !c.Queue.FallbackOnQueue || c.Validate() != nil {
		t.Fatalf("fallbacks %v, queue %+v", c.Fallbacks, c.Queue)
	}

	bad := Defaults("sqlite:x.db")
	bad.Fallbacks = map[string][]string{"big": {"big", ""}}
	bad.Queue = Queue{MaxWait: -time.Second, Priorities: map[string]string{"acme": "urgent"}, Weights: map[string]int{"b": 0}}
	err := bad.Validate()
	for _, want := range []string{"queue.maxWait", `queue.priorities.acme: "urgent" must be high, normal or low`, "queue.weights.b", "fallbacks.big[0]: a model cannot be its own fallback", "fallbacks.big[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
