package metrics

import "sort"

// Batch is one unfinished batch of the Batches API and its progress, from
// the gateway's llmctl_batch_progress gauges.
type Batch struct {
	ID        string  `json:"id"`
	Tenant    string  `json:"tenant"`
	Status    string  `json:"status"`
	Total     float64 `json:"total"`
	Completed float64 `json:"completed"`
	Failed    float64 `json:"failed"`
}

// batchLines adds one llmctl_batch_progress series to byID. Every replica
// reports every batch (the gauges come from the shared store), so the
// targets' values are not summed: the largest count wins.
func batchLines(byID map[string]*Batch, s Series) {
	id := s.Labels["batch"]
	if id == "" {
		return
	}
	b := byID[id]
	if b == nil {
		b = &Batch{ID: id, Tenant: s.Labels["tenant"], Status: s.Labels["status"]}
		byID[id] = b
	}
	switch s.Labels["state"] {
	case "total":
		b.Total = max(b.Total, s.Value)
	case "completed":
		b.Completed = max(b.Completed, s.Value)
	case "failed":
		b.Failed = max(b.Failed, s.Value)
	}
}

// sortedBatches lists byID by id (ids grow with creation time: oldest first).
func sortedBatches(byID map[string]*Batch) []Batch {
	var out []Batch
	for _, b := range byID {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
