package ledger

// BatchPrice is a model's token price for batch lines, beside its
// interactive price in the prices file:
//
//	models:
//	  llama3: {input: 200000, output: 600000, batch: {input: 80000, output: 240000}}
type BatchPrice struct {
	Input  Micros `json:"input"`
	Output Micros `json:"output"`
}

// ForBatch is the price a batch line is charged at: the Batch prices when
// set, else half of Input and Output (rounded down to a micro-unit per
// million tokens). A cached prompt token costs half its price too, and
// never more than the batch input price; PerRequest is unchanged.
func (pr Price) ForBatch() Price {
	b := pr
	b.Batch = nil
	if pr.Batch != nil {
		b.Input, b.Output = pr.Batch.Input, pr.Batch.Output
	} else {
		b.Input, b.Output = pr.Input/2, pr.Output/2
	}
	if pr.CachedInput != nil {
		c := min(*pr.CachedInput/2, b.Input)
		if pr.Batch != nil {
			c = min(*pr.CachedInput, b.Input)
		}
		b.CachedInput = &c
	}
	return b
}
