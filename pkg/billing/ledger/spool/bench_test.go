package spool

import "testing"

// BenchmarkAppend is one fsync'd append of one record: the floor under a
// settlement's latency.
func BenchmarkAppend(b *testing.B) {
	s, _, err := Open(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 200)
	for b.Loop() {
		id, err := s.Append([][]byte{rec})
		if err != nil {
			b.Fatal(err)
		}
		s.Ack(id, 1)
	}
}
