package gguf

import (
	"fmt"
	"os"
	"syscall"
)

// Mapped is a GGUF file memory-mapped read-only.
type Mapped struct {
	*File
	data []byte
}

// Open memory-maps path and parses it.
func Open(path string) (*Mapped, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if st.Size() < 24 {
		return nil, fmt.Errorf("%w: %s: %d bytes is too short for a GGUF file", ErrFormat, path, st.Size())
	}
	data, err := syscall.Mmap(int(fh.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: mmap %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Mapped{File: f, data: data}, nil
}

// Close unmaps the file; tensor data must not be used afterwards.
func (m *Mapped) Close() error {
	if m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data = nil
	return err
}
