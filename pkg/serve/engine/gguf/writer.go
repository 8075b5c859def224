package gguf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Writer assembles a GGUF v3 file: metadata first, then tensors, written in
// one pass by WriteTo.
type Writer struct {
	kv      []KV
	tensors []wtensor
}

type wtensor struct {
	name string
	dims []uint64
	typ  GGMLType
	data []byte
}

// Set adds a metadata entry. v is a Go scalar (uint8..float64, bool),
// a string, []string, []float32 or []int32.
func (w *Writer) Set(key string, v any) {
	w.kv = append(w.kv, KV{Key: key, Value: toValue(v)})
}

// CopyKV adds an entry read from another file unchanged.
func (w *Writer) CopyKV(kv KV) { w.kv = append(w.kv, kv) }

// AddTensor adds a tensor whose encoded bytes are data.
func (w *Writer) AddTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	be, bb, ok := typ.BlockSize()
	if !ok || len(dims) == 0 || dims[0]%uint64(be) != 0 {
		return fmt.Errorf("gguf: tensor %s: bad type %s or shape %v", name, typ, dims)
	}
	if want := n / uint64(be) * uint64(bb); uint64(len(data)) != want {
		return fmt.Errorf("gguf: tensor %s: %d bytes of data, shape needs %d", name, len(data), want)
	}
	w.tensors = append(w.tensors, wtensor{name, dims, typ, data})
	return nil
}

func toValue(v any) Value {
	switch x := v.(type) {
	case uint8:
		return Value{TypeUint8, x}
	case int8:
		return Value{TypeInt8, x}
	case uint16:
		return Value{TypeUint16, x}
	case int16:
		return Value{TypeInt16, x}
	case uint32:
		return Value{TypeUint32, x}
	case int32:
		return Value{TypeInt32, x}
	case float32:
		return Value{TypeFloat32, x}
	case bool:
		return Value{TypeBool, x}
	case string:
		return Value{TypeString, x}
	case uint64:
		return Value{TypeUint64, x}
	case int64:
		return Value{TypeInt64, x}
	case float64:
		return Value{TypeFloat64, x}
	case []string:
		return Value{TypeArray, Array{Elem: TypeString, Len: len(x), Strings: x}}
	case []float32:
		raw := make([]byte, 4*len(x))
		for i, f := range x {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
		return Value{TypeArray, Array{Elem: TypeFloat32, Len: len(x), Raw: raw}}
	case []int32:
		raw := make([]byte, 4*len(x))
		for i, f := range x {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(f))
		}
		return Value{TypeArray, Array{Elem: TypeInt32, Len: len(x), Raw: raw}}
	case Value:
		return x
	}
	panic(fmt.Sprintf("gguf: unsupported metadata type %T", v))
}

type cw struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *cw) bytes(b []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(b)
	c.n += int64(n)
}

func (c *cw) u32(v uint32) { c.bytes(binary.LittleEndian.AppendUint32(nil, v)) }
func (c *cw) u64(v uint64) { c.bytes(binary.LittleEndian.AppendUint64(nil, v)) }
func (c *cw) str(s string) { c.u64(uint64(len(s))); c.bytes([]byte(s)) }

func (c *cw) value(v Value) {
	switch v.Type {
	case TypeString:
		c.str(v.V.(string))
	case TypeArray:
		a := v.V.(Array)
		c.u32(uint32(a.Elem))
		c.u64(uint64(a.Len))
		if a.Elem == TypeString {
			for _, s := range a.Strings {
				c.str(s)
			}
		} else {
			c.bytes(a.Raw)
		}
	default:
		var b []byte
		switch x := v.V.(type) {
		case uint8:
			b = []byte{x}
		case int8:
			b = []byte{byte(x)}
		case bool:
			if x {
				b = []byte{1}
			} else {
				b = []byte{0}
			}
		case uint16:
			b = binary.LittleEndian.AppendUint16(nil, x)
		case int16:
			b = binary.LittleEndian.AppendUint16(nil, uint16(x))
		case uint32:
			b = binary.LittleEndian.AppendUint32(nil, x)
		case int32:
			b = binary.LittleEndian.AppendUint32(nil, uint32(x))
		case float32:
			b = binary.LittleEndian.AppendUint32(nil, math.Float32bits(x))
		case uint64:
			b = binary.LittleEndian.AppendUint64(nil, x)
		case int64:
			b = binary.LittleEndian.AppendUint64(nil, uint64(x))
		case float64:
			b = binary.LittleEndian.AppendUint64(nil, math.Float64bits(x))
		}
		c.bytes(b)
	}
}

func (c *cw) pad(align int64) {
	if r := c.n % align; r != 0 {
		c.bytes(make([]byte, align-r))
	}
}

// WriteTo writes the file.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	c := &cw{w: bufio.NewWriterSize(out, 1<<20)}
	c.bytes([]byte(Magic))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kv)))
	for _, kv := range w.kv {
		c.str(kv.Key)
		c.u32(uint32(kv.Value.Type))
		c.value(kv.Value)
	}
	var off uint64
	for _, t := range w.tensors {
		c.str(t.name)
		c.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			c.u64(d)
		}
		c.u32(uint32(t.typ))
		c.u64(off)
		off += (uint64(len(t.data)) + DefaultAlignment - 1) / DefaultAlignment * DefaultAlignment
	}
	c.pad(DefaultAlignment)
	for _, t := range w.tensors {
		c.bytes(t.data)
		c.pad(DefaultAlignment)
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.n, c.err
}

// File encodes what w holds and parses it back, for building small files
// in memory (vocabularies, test models) without a round trip to disk.
func (w *Writer) File() (*File, error) {
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return Parse(buf.Bytes())
}
