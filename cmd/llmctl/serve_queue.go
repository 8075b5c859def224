package main

import (
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/config"
)

// queueOptions turns the config's queue section into the gateway's.
func queueOptions(q config.Queue) serve.QueueOptions {
	o := serve.QueueOptions{MaxWait: q.MaxWait, MaxDepth: q.MaxDepth, Priorities: q.Priorities,
		Weights: q.Weights, StarvationLimit: q.StarvationLimit, BatchShare: q.BatchShare}
	switch n, auto := q.BatchHeadroomSlots(); {
	case auto:
		o.BatchHeadroom = serve.BatchHeadroomAuto
	case n == 0:
		o.BatchHeadroom = serve.BatchHeadroomNone
	default:
		o.BatchHeadroom = n
	}
	if q.Off {
		o.MaxWait = -1
	}
	return o
}
