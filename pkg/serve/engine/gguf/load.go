package gguf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Mapped is a GGUF file copied into anonymous memory: outside the Go heap
// (the garbage collector neither scans it nor counts it when pacing) and
// read-only once filled. It is a copy, not a mapping of the file, because a
// file mapping ties the running model to the file: truncating it (`cp` over
// it starts with that) makes every later read of the mapping raise SIGBUS,
// which kills the process, and rewriting it in place silently swaps the
// weights under the model. See docs/engine.md, "Model files".
type Mapped struct {
	*File
	data []byte
}

// Open reads the regular file at path into memory and parses it. Anything
// else (a FIFO, a device, a directory) is refused without reading; so is a
// file that shrinks or changes while it is read.
func Open(path string) (*Mapped, error) { return OpenContext(context.Background(), path) }

// OpenContext is Open, giving up between chunks of the read once ctx is
// done, so a signal is not held off by the load of a large file.
func OpenContext(ctx context.Context, path string) (*Mapped, error) {
	fh, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return load(ctx, path, fh)
}

// openRegular opens path without blocking and refuses anything but a
// regular file. O_NONBLOCK because open(2) of a FIFO for reading otherwise
// waits for a writer, forever and deaf to signals; the check is made on the
// opened descriptor, so the path cannot be swapped between check and read.
func openRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	fh := os.NewFile(uintptr(fd), path)
	st, err := fh.Stat()
	if err != nil {
		_ = fh.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if !st.Mode().IsRegular() {
		_ = fh.Close()
		return nil, fmt.Errorf("gguf: %s is %s, not a regular file: a model must be a GGUF file", path, kind(st.Mode()))
	}
	return fh, nil
}

// kind names a non-regular file's type for the error.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file"
}

// source is what load reads: an *os.File, or a test double.
type source interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// load copies src (of the size it has now) into anonymous memory and
// parses it. The size and modification time are compared before and after
// the read, so a file being written is refused rather than loaded half old,
// half new.
func load(ctx context.Context, path string, src source) (*Mapped, error) {
	before, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := before.Size()
	if size < 24 {
		return nil, fmt.Errorf("%w: %s: %d bytes is too short for a GGUF file", ErrFormat, path, size)
	}
	data, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: cannot allocate %d bytes to load it: %w", path, size, err)
	}
	m, err := fill(ctx, path, src, before, data)
	if err != nil {
		_ = unix.Munmap(data)
		return nil, err
	}
	return m, nil
}

// readChunk bounds the read between two looks at the context.
const readChunk = 64 << 20

func fill(ctx context.Context, path string, src source, before fs.FileInfo, data []byte) (*Mapped, error) {
	for off := 0; off < len(data); {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("gguf: loading %s: %w", path, err)
		}
		n, err := src.ReadAt(data[off:min(off+readChunk, len(data))], int64(off))
		off += n
		if n == 0 || (err != nil && off < len(data)) {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("gguf: %s was truncated while loading: %d bytes were there of the %d it had", path, off, len(data))
			}
			return nil, fmt.Errorf("gguf: read %s: %w", path, err)
		}
	}
	after, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return nil, fmt.Errorf("gguf: %s changed while loading (was %d bytes, modified %s; now %d bytes, modified %s): load it once it is completely written",
			path, before.Size(), before.ModTime().UTC().Format("15:04:05.000000000"), after.Size(), after.ModTime().UTC().Format("15:04:05.000000000"))
	}
	// Read-only from here on, as the file mapping was: a stray write is a
	// crash at the writer, not a corrupted weight.
	if err := unix.Mprotect(data, unix.PROT_READ); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Mapped{File: f, data: data}, nil
}

// Release gives the memory holding t's data back to the system, for a
// tensor the model no longer reads after loading (the engine's repacked
// Q4_0/Q4_K matrices, whose packed copies replace them), so those weights
// are not held twice. Only whole pages inside the tensor are released;
// they read as zeros afterwards.
func (m *Mapped) Release(t *TensorInfo) error {
	if m.data == nil {
		return nil
	}
	page := uint64(os.Getpagesize())
	start := m.DataStart + t.Offset
	lo := (start + page - 1) / page * page
	hi := (start + t.Size) / page * page
	if hi <= lo || hi > uint64(len(m.data)) {
		return nil
	}
	if err := unix.Madvise(m.data[lo:hi], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("gguf: releasing tensor %s: %w", t.Name, err)
	}
	return nil
}

// Close frees the memory; tensor data must not be used afterwards.
func (m *Mapped) Close() error {
	if m.data == nil {
		return nil
	}
	err := unix.Munmap(m.data)
	m.data = nil
	return err
}
