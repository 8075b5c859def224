// Package gguf reads and writes GGUF files (versions 2 and 3), the container
// llama.cpp uses for models: a header of typed key/value metadata, a table of
// tensor descriptors, and an aligned data section.
//
// The reader works on a byte slice (usually the read-only copy Open makes)
// and never allocates in proportion to a count read from the file before
// checking that the file is large enough to hold that many items, so
// hostile files fail with an error instead of exhausting memory or
// panicking.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// ErrFormat is wrapped by every error about malformed file contents.
var ErrFormat = errors.New("gguf: malformed file")

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// fixedSize is the encoded size of scalar value types; 0 for variable ones.
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// GGMLType is a tensor element type.
type GGMLType uint32

// Tensor types this package knows the block layout of.
const (
	F32  GGMLType = 0
	F16  GGMLType = 1
	Q4_0 GGMLType = 2
	Q4_1 GGMLType = 3
	Q5_0 GGMLType = 6
	Q5_1 GGMLType = 7
	Q8_0 GGMLType = 8
	Q8_1 GGMLType = 9
	Q2_K GGMLType = 10
	Q3_K GGMLType = 11
	Q4_K GGMLType = 12
	Q5_K GGMLType = 13
	Q6_K GGMLType = 14
	Q8_K GGMLType = 15
	BF16 GGMLType = 30
)

type layout struct {
	name       string
	blockElems int
	blockBytes int
}

var layouts = map[GGMLType]layout{
	F32:  {"F32", 1, 4},
	F16:  {"F16", 1, 2},
	Q4_0: {"Q4_0", 32, 18},
	Q4_1: {"Q4_1", 32, 20},
	Q5_0: {"Q5_0", 32, 22},
	Q5_1: {"Q5_1", 32, 24},
	Q8_0: {"Q8_0", 32, 34},
	Q8_1: {"Q8_1", 32, 36},
	Q2_K: {"Q2_K", 256, 84},
	Q3_K: {"Q3_K", 256, 110},
	Q4_K: {"Q4_K", 256, 144},
	Q5_K: {"Q5_K", 256, 176},
	Q6_K: {"Q6_K", 256, 210},
	Q8_K: {"Q8_K", 256, 292},
	BF16: {"BF16", 1, 2},
}

func (t GGMLType) String() string {
	if l, ok := layouts[t]; ok {
		return l.name
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// BlockSize returns elements per block and bytes per block, or ok=false for
// a type this package does not know.
func (t GGMLType) BlockSize() (elems, bytes int, ok bool) {
	l, ok := layouts[t]
	return l.blockElems, l.blockBytes, ok
}

// RowBytes is the encoded size of n elements of type t (n a block multiple).
func (t GGMLType) RowBytes(n int) int {
	l := layouts[t]
	return n / l.blockElems * l.blockBytes
}

// Value is one metadata value: a scalar (as its natural Go type), a string,
// or an Array.
type Value struct {
	Type ValueType
	V    any // uint8..float64, bool, string, or Array
}

// Array is an array metadata value. Elements of scalar type are decoded
// lazily from Raw so huge token tables cost nothing until used.
type Array struct {
	Elem ValueType
	Len  int
	// Strings holds the elements when Elem is TypeString.
	Strings []string
	// Raw holds the little-endian encoding of scalar elements.
	Raw []byte
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Dims   []uint64 // innermost first, as ggml orders them
	Type   GGMLType
	Offset uint64 // relative to the data section
	Size   uint64 // bytes
}

// Elements is the product of the dimensions.
func (t *TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Tensor data slices alias the input buffer.
type File struct {
	Version   uint32
	KV        []KV
	Tensors   []TensorInfo
	Alignment uint64
	DataStart uint64

	kv     map[string]int
	byName map[string]int
	buf    []byte
}

// Limits that keep a parse bounded regardless of declared counts.
const (
	maxDims      = 4
	maxStringLen = 1 << 26 // 64 MiB per string
	maxArrayNest = 1       // arrays of arrays are read but not nested further
)

type reader struct {
	b   []byte
	off uint64
}

func (r *reader) errf(format string, a ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, r.off, fmt.Sprintf(format, a...))
}

func (r *reader) remaining() uint64 { return uint64(len(r.b)) - r.off }

func (r *reader) take(n uint64) ([]byte, error) {
	if n > r.remaining() {
		return nil, r.errf("need %d bytes, %d left (truncated file?)", n, r.remaining())
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) u32() (uint32, error) {
	s, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

func (r *reader) u64() (uint64, error) {
	s, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

func (r *reader) str() (string, error) {
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if n > maxStringLen {
		return "", r.errf("string length %d exceeds limit", n)
	}
	s, err := r.take(n)
	if err != nil {
		return "", err
	}
	return string(s), nil
}

func (r *reader) value(t ValueType, depth int) (Value, error) {
	if sz := t.fixedSize(); sz > 0 {
		s, err := r.take(uint64(sz))
		if err != nil {
			return Value{}, err
		}
		return Value{Type: t, V: decodeScalar(t, s)}, nil
	}
	switch t {
	case TypeString:
		s, err := r.str()
		return Value{Type: t, V: s}, err
	case TypeArray:
		if depth > maxArrayNest {
			return Value{}, r.errf("arrays nested too deeply")
		}
		et, err := r.u32()
		if err != nil {
			return Value{}, err
		}
		n, err := r.u64()
		if err != nil {
			return Value{}, err
		}
		a := Array{Elem: ValueType(et)}
		if sz := a.Elem.fixedSize(); sz > 0 {
			if n > r.remaining()/uint64(sz) {
				return Value{}, r.errf("array of %d elements does not fit in the file", n)
			}
			a.Len = int(n)
			a.Raw, _ = r.take(n * uint64(sz))
			return Value{Type: t, V: a}, nil
		}
		switch a.Elem {
		case TypeString:
			// Every string costs at least its 8-byte length prefix.
			if n > r.remaining()/8 {
				return Value{}, r.errf("array of %d strings does not fit in the file", n)
			}
			a.Len = int(n)
			a.Strings = make([]string, n)
			for i := range a.Strings {
				if a.Strings[i], err = r.str(); err != nil {
					return Value{}, err
				}
			}
			return Value{Type: t, V: a}, nil
		case TypeArray:
			// Nested arrays are skipped over (no model metadata uses them).
			if n > r.remaining()/12 {
				return Value{}, r.errf("array of %d arrays does not fit in the file", n)
			}
			for i := uint64(0); i < n; i++ {
				if _, err := r.value(TypeArray, depth+1); err != nil {
					return Value{}, err
				}
			}
			a.Len = int(n)
			return Value{Type: t, V: a}, nil
		}
		return Value{}, r.errf("unknown array element type %d", et)
	}
	return Value{}, r.errf("unknown value type %d", t)
}

func decodeScalar(t ValueType, s []byte) any {
	switch t {
	case TypeUint8:
		return s[0]
	case TypeInt8:
		return int8(s[0])
	case TypeBool:
		return s[0] != 0
	case TypeUint16:
		return binary.LittleEndian.Uint16(s)
	case TypeInt16:
		return int16(binary.LittleEndian.Uint16(s))
	case TypeUint32:
		return binary.LittleEndian.Uint32(s)
	case TypeInt32:
		return int32(binary.LittleEndian.Uint32(s))
	case TypeFloat32:
		return math.Float32frombits(binary.LittleEndian.Uint32(s))
	case TypeUint64:
		return binary.LittleEndian.Uint64(s)
	case TypeInt64:
		return int64(binary.LittleEndian.Uint64(s))
	case TypeFloat64:
		return math.Float64frombits(binary.LittleEndian.Uint64(s))
	}
	return nil
}

// Parse decodes a GGUF file held entirely in b. The returned File keeps
// references into b.
func Parse(b []byte) (*File, error) {
	r := &reader{b: b}
	magic, err := r.take(4)
	if err != nil {
		return nil, fmt.Errorf("%w: file too short for a GGUF header", ErrFormat)
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q (not a GGUF file)", ErrFormat, magic)
	}
	f := &File{Alignment: DefaultAlignment, buf: b}
	if f.Version, err = r.u32(); err != nil {
		return nil, err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("%w: unsupported GGUF version %d (want 2 or 3)", ErrFormat, f.Version)
	}
	nt, err := r.u64()
	if err != nil {
		return nil, err
	}
	nkv, err := r.u64()
	if err != nil {
		return nil, err
	}
	// A KV needs at least a key length, a type and one byte; a tensor at
	// least a name length, n_dims, type and offset.
	if nkv > r.remaining()/13 {
		return nil, r.errf("%d metadata entries cannot fit in the file", nkv)
	}
	if nt > r.remaining()/24 {
		return nil, r.errf("%d tensors cannot fit in the file", nt)
	}
	f.KV = make([]KV, 0, nkv)
	f.kv = make(map[string]int, nkv)
	for i := uint64(0); i < nkv; i++ {
		k, err := r.str()
		if err != nil {
			return nil, fmt.Errorf("metadata entry %d key: %w", i, err)
		}
		t, err := r.u32()
		if err != nil {
			return nil, err
		}
		v, err := r.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", k, err)
		}
		if _, dup := f.kv[k]; dup {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrFormat, k)
		}
		f.kv[k] = len(f.KV)
		f.KV = append(f.KV, KV{Key: k, Value: v})
	}
	if v, ok := f.kv["general.alignment"]; ok {
		a, ok := f.KV[v].Value.V.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, fmt.Errorf("%w: general.alignment must be a power-of-two uint32", ErrFormat)
		}
		f.Alignment = uint64(a)
	}
	f.Tensors = make([]TensorInfo, 0, nt)
	f.byName = make(map[string]int, nt)
	for i := uint64(0); i < nt; i++ {
		var ti TensorInfo
		if ti.Name, err = r.str(); err != nil {
			return nil, fmt.Errorf("tensor %d name: %w", i, err)
		}
		nd, err := r.u32()
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > maxDims {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions", ErrFormat, ti.Name, nd)
		}
		ti.Dims = make([]uint64, nd)
		elems := uint64(1)
		for d := range ti.Dims {
			if ti.Dims[d], err = r.u64(); err != nil {
				return nil, err
			}
			if ti.Dims[d] == 0 || ti.Dims[d] > 1<<40 || elems > (1<<50)/ti.Dims[d] {
				return nil, fmt.Errorf("%w: tensor %q has an absurd shape", ErrFormat, ti.Name)
			}
			elems *= ti.Dims[d]
		}
		t, err := r.u32()
		if err != nil {
			return nil, err
		}
		ti.Type = GGMLType(t)
		be, bb, ok := ti.Type.BlockSize()
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q has unknown type %d", ErrFormat, ti.Name, t)
		}
		if ti.Dims[0]%uint64(be) != 0 {
			return nil, fmt.Errorf("%w: tensor %q row of %d is not a multiple of the %s block (%d)", ErrFormat, ti.Name, ti.Dims[0], ti.Type, be)
		}
		ti.Size = elems / uint64(be) * uint64(bb)
		if ti.Offset, err = r.u64(); err != nil {
			return nil, err
		}
		if ti.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%w: tensor %q offset %d is not aligned to %d", ErrFormat, ti.Name, ti.Offset, f.Alignment)
		}
		if _, dup := f.byName[ti.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrFormat, ti.Name)
		}
		f.byName[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	f.DataStart = (r.off + f.Alignment - 1) / f.Alignment * f.Alignment
	size := uint64(len(b))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if f.DataStart > size || t.Offset > size-f.DataStart || t.Size > size-f.DataStart-t.Offset {
			return nil, fmt.Errorf("%w: tensor %q data [%d, +%d) lies outside the file (truncated?)", ErrFormat, t.Name, t.Offset, t.Size)
		}
	}
	return f, nil
}

// Data returns the bytes of tensor t.
func (f *File) Data(t *TensorInfo) []byte {
	s := f.DataStart + t.Offset
	return f.buf[s : s+t.Size : s+t.Size]
}

// Tensor finds a tensor by name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Get returns the metadata value for key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kv[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// String returns a string metadata value.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Get(key)
	s, ok2 := v.V.(string)
	return s, ok && ok2
}

// Uint returns an integer metadata value of any integer type as uint64;
// negative values report ok=false.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch x := v.V.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Float returns a floating-point metadata value.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	switch x := v.V.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Bool returns a boolean metadata value.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Get(key)
	b, ok2 := v.V.(bool)
	return b, ok && ok2
}

// Strings returns a string-array metadata value.
func (f *File) Strings(key string) ([]string, bool) {
	v, ok := f.Get(key)
	a, ok2 := v.V.(Array)
	if !ok || !ok2 || a.Elem != TypeString {
		return nil, false
	}
	return a.Strings, true
}

// Float32s decodes a float32-array metadata value.
func (f *File) Float32s(key string) ([]float32, bool) {
	v, ok := f.Get(key)
	a, ok2 := v.V.(Array)
	if !ok || !ok2 || a.Elem != TypeFloat32 {
		return nil, false
	}
	out := make([]float32, a.Len)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(a.Raw[4*i:]))
	}
	return out, true
}

// Int32s decodes an int32 (or uint32) array metadata value.
func (f *File) Int32s(key string) ([]int32, bool) {
	v, ok := f.Get(key)
	a, ok2 := v.V.(Array)
	if !ok || !ok2 || (a.Elem != TypeInt32 && a.Elem != TypeUint32) {
		return nil, false
	}
	out := make([]int32, a.Len)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(a.Raw[4*i:]))
	}
	return out, true
}
