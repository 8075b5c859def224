package ledger

import "context"

// EntryLister is the part of a Store that lists entries.
type EntryLister interface {
	Entries(ctx context.Context, f Filter) ([]Entry, error)
}

// walkPage is how many entries Walk reads at a time.
const walkPage = 5000

// Walk calls fn for every entry f selects, newest first, reading a page at
// a time so that a long window does not sit in memory at once (f.Limit and
// f.NewestFirst are Walk's own).
func Walk(ctx context.Context, l EntryLister, f Filter, fn func(Entry)) error {
	f.NewestFirst, f.Limit = true, walkPage
	for {
		es, err := l.Entries(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range es {
			fn(e)
		}
		if len(es) < f.Limit {
			return nil
		}
		f.BeforeSeq = es[len(es)-1].Seq
	}
}
