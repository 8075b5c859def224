package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func records(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, []byte(strconv.Itoa(i)))
	}
	return out
}

func flatten(segs []Segment) []string {
	var out []string
	for _, s := range segs {
		for _, r := range s.Records {
			out = append(out, string(r))
		}
	}
	return out
}

func TestAppendAckReopen(t *testing.T) {
	dir := t.TempDir()
	s, left, err := Open(dir, 64) // tiny segments: every append rotates
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("fresh spool returned %d segments", len(left))
	}
	a, err := s.Append(records(0, 10))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Append(records(10, 20))
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("segment did not rotate past maxSegment")
	}
	s.Ack(a, 10)
	if got := s.Depth(); got != 10 {
		t.Fatalf("depth = %d, want 10", got)
	}
	if _, err := os.Stat(s.path(a)); !os.IsNotExist(err) {
		t.Fatalf("acknowledged closed segment still on disk: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, left, err := Open(dir, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := flatten(left)
	want := flatten([]Segment{{Records: records(10, 20)}})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	// Appends after a reopen never reuse a replayed segment's id.
	c, err := s2.Append(records(20, 21))
	if err != nil {
		t.Fatal(err)
	}
	if c <= b {
		t.Fatalf("new segment id %d not after %d", c, b)
	}
	s2.Ack(left[0].ID, len(left[0].Records))
	if got := s2.Depth(); got != 1 {
		t.Fatalf("depth = %d, want 1", got)
	}
}

func TestFullyAckedCurrentSegmentRemovedOnClose(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Append(records(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	s.Ack(id, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if len(m) != 0 {
		t.Fatalf("segments left after a clean close: %v", m)
	}
	if _, err := s.Append(records(0, 1)); err != ErrClosed {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
}

func TestTornTailKeepsWholeRecordsAndQuarantines(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Append(records(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	path := s.path(id)
	s.Close()
	// A crash during the next append: half a record at the end.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(Encode(nil, []byte("never acknowledged"))[:11])
	f.Close()

	s2, left, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || !left[0].Torn {
		t.Fatalf("want one torn segment, got %+v", left)
	}
	if got := flatten(left); fmt.Sprint(got) != fmt.Sprint(flatten([]Segment{{Records: records(0, 5)}})) {
		t.Fatalf("replayed %v", got)
	}
	s2.Ack(left[0].ID, 5)
	if _, err := os.Stat(path + ".corrupt"); err != nil {
		t.Fatalf("torn segment not kept as .corrupt: %v", err)
	}
	s2.Close()
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := Open(dir, 0); err == nil {
		t.Fatal("a second process could open the same spool")
	}
}

// TestCrashLosesNoAcknowledgedRecord SIGKILLs a process while it appends and
// checks that every append it saw acknowledged is readable afterwards.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	if os.Getenv("SPOOL_CRASH_HELPER") != "" {
		crashHelper(os.Getenv("SPOOL_CRASH_HELPER"))
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLosesNoAcknowledgedRecord$")
	cmd.Env = append(os.Environ(), "SPOOL_CRASH_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			continue
		}
		acked = n
		if acked >= 300 {
			break
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if acked < 300 {
		t.Fatalf("helper acknowledged only up to %d", acked)
	}
	s, left, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[string]bool{}
	for _, r := range flatten(left) {
		seen[r] = true
	}
	for i := 0; i <= acked; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("acknowledged record %d lost in the crash (%d records replayed)", i, len(seen))
		}
	}
}

func crashHelper(dir string) {
	s, _, err := Open(dir, 4<<10)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		// Every third record goes through Write: no fsync, but a
		// killed process leaves it in the page cache all the same.
		write := s.Append
		if i%3 == 0 {
			write = s.Write
		}
		if _, err := write([][]byte{[]byte(strconv.Itoa(i))}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(w, i) // acknowledged only once the call returned
		w.Flush()
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(Encode(nil, []byte(`{"key":"a"}`)))
	f.Add(Encode(Encode(nil, []byte("x")), []byte("yz"))[:13])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, torn := Decode(data)
		var re []byte
		for _, r := range recs {
			re = Encode(re, r)
		}
		// Whole records are a prefix of the input; the rest is the torn tail.
		if !bytes.HasPrefix(data, re) {
			t.Fatalf("decoded records do not re-encode to a prefix of the input")
		}
		if torn != (len(re) != len(data)) {
			t.Fatalf("torn=%v but %d of %d bytes decoded", torn, len(re), len(data))
		}
	})
}
