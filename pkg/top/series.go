package top

// Series is a bounded history of one number, oldest first.
type Series struct {
	vals []float64
}

// Push appends v, dropping the oldest beyond HistoryLen.
func (s *Series) Push(v float64) {
	if len(s.vals) == HistoryLen {
		copy(s.vals, s.vals[1:])
		s.vals = s.vals[:HistoryLen-1]
	}
	s.vals = append(s.vals, v)
}

// Last returns up to n newest values, oldest first.
func (s *Series) Last(n int) []float64 {
	if s == nil || n <= 0 {
		return nil
	}
	if n > len(s.vals) {
		n = len(s.vals)
	}
	return s.vals[len(s.vals)-n:]
}
