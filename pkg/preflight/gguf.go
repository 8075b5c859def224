package preflight

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ggufModel is what model fit needs from a GGUF header. Only the header is
// read: the metadata and the tensor table, never the weights.
type ggufModel struct {
	Version     uint32
	Arch        string
	Name        string
	Layers      uint64
	ContextLen  uint64
	Embedding   uint64
	Heads       uint64
	KVHeads     uint64
	KeyLength   uint64
	ValueLength uint64
	// WeightBytes is the tensor data size computed from the tensor table.
	WeightBytes uint64
	Tensors     uint64
	FileType    int64 // general.file_type, -1 when absent
	FileSize    int64
}

// Bounds that keep a corrupt or hostile header from making us allocate or
// loop without end. Real headers are far inside them (the largest part is a
// tokenizer vocabulary of a few hundred thousand strings).
const (
	ggufMaxKV      = 1 << 16
	ggufMaxTensors = 1 << 20
	ggufMaxString  = 16 << 20
	ggufMaxArray   = 1 << 26
	ggufMaxDims    = 8
	ggufMaxHeader  = 512 << 20
)

var errNotGGUF = errors.New("not a GGUF file (bad magic)")

// GGUF metadata value types.
const (
	gUint8 uint32 = iota
	gInt8
	gUint16
	gInt16
	gUint32
	gInt32
	gFloat32
	gBool
	gString
	gArray
	gUint64
	gInt64
	gFloat64
)

// readGGUFFile parses the header of the GGUF file at path.
func readGGUFFile(path string) (ggufModel, error) {
	f, err := os.Open(path)
	if err != nil {
		return ggufModel{}, err
	}
	defer f.Close()
	m, err := readGGUF(f)
	if err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil {
		m.FileSize = fi.Size()
	}
	return m, nil
}

// ggufReader reads little-endian values and counts bytes against the bound.
type ggufReader struct {
	r   *bufio.Reader
	n   int64
	err error
}

func (g *ggufReader) bytes(n uint64) []byte {
	if g.err != nil {
		return nil
	}
	if g.n+int64(n) > ggufMaxHeader {
		g.err = fmt.Errorf("header larger than %d bytes", ggufMaxHeader)
		return nil
	}
	// Grow with the data actually there: a corrupt length must not make us
	// allocate megabytes up front for a file that ends a few bytes later.
	b, err := io.ReadAll(io.LimitReader(g.r, int64(n)))
	if err == nil && uint64(len(b)) < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		g.err = fmt.Errorf("truncated header: %w", err)
		return nil
	}
	g.n += int64(n)
	return b
}

func (g *ggufReader) skip(n uint64) {
	if g.err != nil {
		return
	}
	if g.n+int64(n) > ggufMaxHeader || n > ggufMaxHeader {
		g.err = fmt.Errorf("header larger than %d bytes", ggufMaxHeader)
		return
	}
	d, err := g.r.Discard(int(n))
	g.n += int64(d)
	if err != nil {
		g.err = fmt.Errorf("truncated header: %w", err)
	}
}

func (g *ggufReader) u32() uint32 {
	if b := g.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (g *ggufReader) u64() uint64 {
	if b := g.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (g *ggufReader) str() string {
	n := g.u64()
	if g.err == nil && n > ggufMaxString {
		g.err = fmt.Errorf("string of %d bytes exceeds %d", n, ggufMaxString)
	}
	return string(g.bytes(n))
}

// scalarSize is the encoded size of fixed-width value types.
func scalarSize(t uint32) (uint64, bool) {
	switch t {
	case gUint8, gInt8, gBool:
		return 1, true
	case gUint16, gInt16:
		return 2, true
	case gUint32, gInt32, gFloat32:
		return 4, true
	case gUint64, gInt64, gFloat64:
		return 8, true
	}
	return 0, false
}

// value reads one metadata value; arrays are skipped and reported as nil.
func (g *ggufReader) value(t uint32) any {
	switch t {
	case gString:
		return g.str()
	case gArray:
		et, n := g.u32(), g.u64()
		if g.err == nil && n > ggufMaxArray {
			g.err = fmt.Errorf("array of %d elements exceeds %d", n, ggufMaxArray)
		}
		if g.err != nil {
			return nil
		}
		if sz, ok := scalarSize(et); ok {
			g.skip(sz * n)
			return nil
		}
		if et != gString {
			g.err = fmt.Errorf("array of unsupported type %d", et)
			return nil
		}
		for i := uint64(0); i < n && g.err == nil; i++ {
			l := g.u64()
			if g.err == nil && l > ggufMaxString {
				g.err = fmt.Errorf("string of %d bytes exceeds %d", l, ggufMaxString)
			}
			g.skip(l)
		}
		return nil
	}
	sz, ok := scalarSize(t)
	if !ok {
		g.err = fmt.Errorf("unknown metadata type %d", t)
		return nil
	}
	b := g.bytes(sz)
	if b == nil {
		return nil
	}
	switch t {
	case gUint8:
		return uint64(b[0])
	case gInt8:
		return int64(int8(b[0]))
	case gBool:
		return b[0] != 0
	case gUint16:
		return uint64(binary.LittleEndian.Uint16(b))
	case gInt16:
		return int64(int16(binary.LittleEndian.Uint16(b)))
	case gUint32:
		return uint64(binary.LittleEndian.Uint32(b))
	case gInt32:
		return int64(int32(binary.LittleEndian.Uint32(b)))
	case gFloat32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case gUint64:
		return binary.LittleEndian.Uint64(b)
	case gInt64:
		return int64(binary.LittleEndian.Uint64(b))
	default:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
}

// ggmlTypeSize is (elements per block, bytes per block) of ggml tensor types.
var ggmlTypeSize = map[uint32][2]uint64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24}, 8: {32, 34}, 9: {32, 36},
	10: {256, 84}, 11: {256, 110}, 12: {256, 144}, 13: {256, 176}, 14: {256, 210}, 15: {256, 292},
	16: {256, 66}, 17: {256, 74}, 18: {256, 98}, 19: {256, 50}, 20: {32, 18}, 21: {256, 110},
	22: {256, 82}, 23: {256, 136}, 24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8}, 28: {1, 8},
	29: {256, 56}, 30: {1, 2}, 34: {256, 54}, 35: {256, 66}, 39: {32, 17},
}

// readGGUF parses a GGUF (v2 or v3) header from r.
func readGGUF(r io.Reader) (ggufModel, error) {
	g := &ggufReader{r: bufio.NewReaderSize(r, 64<<10)}
	m := ggufModel{FileType: -1}
	if magic := g.bytes(4); g.err != nil || string(magic) != "GGUF" {
		if g.err != nil {
			return m, g.err
		}
		return m, errNotGGUF
	}
	m.Version = g.u32()
	if g.err == nil && (m.Version < 2 || m.Version > 3) {
		return m, fmt.Errorf("GGUF version %d not supported (want 2 or 3)", m.Version)
	}
	nt, nkv := g.u64(), g.u64()
	if g.err != nil {
		return m, g.err
	}
	if nkv > ggufMaxKV || nt > ggufMaxTensors {
		return m, fmt.Errorf("implausible header: %d metadata entries, %d tensors", nkv, nt)
	}
	meta := map[string]any{}
	for i := uint64(0); i < nkv && g.err == nil; i++ {
		k := g.str()
		t := g.u32()
		if v := g.value(t); v != nil {
			meta[k] = v
		}
	}
	if g.err != nil {
		return m, g.err
	}
	m.Tensors = nt
	for i := uint64(0); i < nt && g.err == nil; i++ {
		g.str() // name
		nd := g.u32()
		if g.err == nil && nd > ggufMaxDims {
			return m, fmt.Errorf("tensor %d has %d dimensions (max %d)", i, nd, ggufMaxDims)
		}
		elems := uint64(1)
		for j := uint32(0); j < nd; j++ {
			d := g.u64()
			if d != 0 && elems > math.MaxUint64/d {
				return m, fmt.Errorf("tensor %d: element count overflows", i)
			}
			elems *= d
		}
		if elems > 1<<48 {
			return m, fmt.Errorf("tensor %d: implausible %d elements", i, elems)
		}
		typ := g.u32()
		g.u64() // offset
		if g.err != nil {
			break
		}
		bs, ok := ggmlTypeSize[typ]
		if !ok {
			return m, fmt.Errorf("tensor %d: unknown ggml type %d", i, typ)
		}
		size := (elems + bs[0] - 1) / bs[0] * bs[1]
		if m.WeightBytes+size < m.WeightBytes {
			return m, fmt.Errorf("tensor sizes overflow")
		}
		m.WeightBytes += size
	}
	if g.err != nil {
		return m, g.err
	}
	m.Arch, _ = meta["general.architecture"].(string)
	if m.Arch == "" {
		return m, errors.New("no general.architecture in metadata")
	}
	m.Name, _ = meta["general.name"].(string)
	num := func(k string) uint64 {
		switch v := meta[m.Arch+"."+k].(type) {
		case uint64:
			return v
		case int64:
			if v > 0 {
				return uint64(v)
			}
		}
		return 0
	}
	m.Layers = num("block_count")
	m.ContextLen = num("context_length")
	m.Embedding = num("embedding_length")
	m.Heads = num("attention.head_count")
	m.KVHeads = num("attention.head_count_kv")
	if m.KVHeads == 0 {
		m.KVHeads = m.Heads
	}
	m.KeyLength = num("attention.key_length")
	m.ValueLength = num("attention.value_length")
	if m.Heads > 0 {
		if m.KeyLength == 0 {
			m.KeyLength = m.Embedding / m.Heads
		}
		if m.ValueLength == 0 {
			m.ValueLength = m.Embedding / m.Heads
		}
	}
	switch v := meta["general.file_type"].(type) {
	case uint64:
		m.FileType = int64(v)
	case int64:
		m.FileType = v
	}
	return m, nil
}

// kvBytesPerToken is the f16 KV cache size of one token across all layers:
// a K and a V vector per KV head per layer.
func (m ggufModel) kvBytesPerToken() uint64 {
	return m.Layers * m.KVHeads * (m.KeyLength + m.ValueLength) * 2
}
