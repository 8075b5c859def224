package gguf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeSource serves r but reports size and modification times of its own,
// for a file that changes between the checks and the read.
type fakeSource struct {
	*bytes.Reader
	size  int64
	mtime []time.Time // one per Stat call
}

type fakeInfo struct {
	size  int64
	mtime time.Time
}

func (i fakeInfo) Name() string       { return "model.gguf" }
func (i fakeInfo) Size() int64        { return i.size }
func (i fakeInfo) Mode() fs.FileMode  { return 0o600 }
func (i fakeInfo) ModTime() time.Time { return i.mtime }
func (i fakeInfo) IsDir() bool        { return false }
func (i fakeInfo) Sys() any           { return nil }

func (s *fakeSource) Stat() (fs.FileInfo, error) {
	t := s.mtime[0]
	if len(s.mtime) > 1 {
		s.mtime = s.mtime[1:]
	}
	return fakeInfo{s.size, t}, nil
}

// TestLoadRefusesAFileChanging: a file that shrinks between its size check
// and the read, or whose modification time moves during the read, is
// refused naming the path, not loaded half old, half new; a cancelled
// context stops the load.
func TestLoadRefusesAFileChanging(t *testing.T) {
	b := sample(t)
	t0 := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		name string
		src  *fakeSource
		want string
	}{
		{"shrank", &fakeSource{bytes.NewReader(b[:len(b)/2]), int64(len(b)), []time.Time{t0}}, "truncated while loading"},
		{"rewritten", &fakeSource{bytes.NewReader(b), int64(len(b)), []time.Time{t0, t0.Add(time.Millisecond)}}, "changed while loading"},
	} {
		_, err := load(context.Background(), "/models/m.gguf", c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "/models/m.gguf") {
			t.Errorf("%s: %v; want an error naming the file, %q", c.name, err, c.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := load(ctx, "/models/m.gguf", &fakeSource{bytes.NewReader(b), int64(len(b)), []time.Time{t0}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want the load given up", err)
	}
	m, err := load(context.Background(), "/models/m.gguf", &fakeSource{bytes.NewReader(b), int64(len(b)), []time.Time{t0}})
	if err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRelease: releasing a tensor frees the whole pages inside it (no
// longer resident) and leaves every other byte as it was.
func TestRelease(t *testing.T) {
	page := os.Getpagesize()
	f32 := func(n int, base float32) []byte {
		b := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(base+float32(i)))
		}
		return b
	}
	var w Writer
	w.Set("general.architecture", "llama")
	big := 3*page/4 + 5 // three pages and a bit: at least two whole pages inside
	for _, tn := range []struct {
		name string
		n    int
	}{{"before", 8}, {"big", big}, {"after", 8}} {
		if err := w.AddTensor(tn.name, F32, []uint64{uint64(tn.n)}, f32(tn.n, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bt, _ := m.Tensor("big")
	if err := m.Release(bt); err != nil {
		t.Fatal(err)
	}
	whole := bytes.Clone(buf.Bytes())
	start := int(m.DataStart + bt.Offset)
	lo, hi := (start+page-1)/page*page, (start+int(bt.Size))/page*page
	if hi-lo < 2*page {
		t.Fatalf("test file lays the tensor out over %d whole pages, want at least 2", (hi-lo)/page)
	}
	// Checked first: reading a released page maps the shared zero page,
	// which counts as resident.
	resident := make([]byte, (hi-lo)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m.data[lo])), uintptr(hi-lo),
		uintptr(unsafe.Pointer(&resident[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for i, r := range resident {
		if r&1 != 0 {
			t.Fatalf("page %d of the released tensor is still resident", i)
		}
	}
	clear(whole[lo:hi])
	if !bytes.Equal(m.data, whole) {
		t.Fatal("release changed bytes outside the tensor's whole pages, or left some inside")
	}
}
