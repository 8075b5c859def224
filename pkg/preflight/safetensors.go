package preflight

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strings"
)

// stMaxHeader is the safetensors format's own bound on the JSON header
// (the reference implementation refuses larger ones): a hostile length
// cannot make us allocate more.
const stMaxHeader = 100_000_000

// stDtypeBits is the width of each safetensors dtype, in bits (the FP4/FP6
// microscaling types pack several elements per byte).
var stDtypeBits = map[string]uint64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16,
	"I32": 32, "U32": 32, "F32": 32,
	"I64": 64, "U64": 64, "F64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// stTensors is what model fit needs from one .safetensors file's header.
type stTensors struct {
	Tensors int
	// Bytes is the tensor data as stored; ByDtype splits it by dtype.
	Bytes   uint64
	ByDtype map[string]uint64
}

type stEntry struct {
	Dtype       string    `json:"dtype"`
	Shape       []uint64  `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

var errNotSafetensors = errors.New("not a safetensors file")

// readSafetensors parses a safetensors header: an 8-byte little-endian
// length N, then N bytes of JSON mapping each tensor name to its dtype,
// shape and [begin, end) byte offsets in the data that follows (plus an
// optional "__metadata__" map of strings). size is the file's length, or
// -1 when unknown; with it, every tensor must lie inside the file.
func readSafetensors(r io.Reader, size int64) (stTensors, error) {
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return stTensors{}, fmt.Errorf("%w: reading the header length: %w", errNotSafetensors, err)
	}
	if n < 2 || n > stMaxHeader {
		return stTensors{}, fmt.Errorf("%w: header length %d outside 2..%d", errNotSafetensors, n, stMaxHeader)
	}
	if size >= 0 && 8+n > uint64(size) {
		return stTensors{}, fmt.Errorf("%w: header length %d runs past the end of the %d-byte file", errNotSafetensors, n, size)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return stTensors{}, fmt.Errorf("%w: reading the %d-byte header: %w", errNotSafetensors, n, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return stTensors{}, fmt.Errorf("%w: header is not a JSON object: %w", errNotSafetensors, err)
	}
	out := stTensors{ByDtype: map[string]uint64{}}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names) // errors name the same tensor on every run
	dataLen := uint64(math.MaxUint64)
	if size >= 0 {
		dataLen = uint64(size) - 8 - n
	}
	for _, name := range names {
		if name == "__metadata__" {
			var meta map[string]string
			if err := json.Unmarshal(raw[name], &meta); err != nil {
				return stTensors{}, fmt.Errorf("%w: __metadata__ is not a map of strings: %w", errNotSafetensors, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(raw[name], &e); err != nil {
			return stTensors{}, fmt.Errorf("%w: tensor %q: %w", errNotSafetensors, name, err)
		}
		nbytes, err := e.bytes()
		if err != nil {
			return stTensors{}, fmt.Errorf("%w: tensor %q: %w", errNotSafetensors, name, err)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin > end || end-begin != nbytes {
			return stTensors{}, fmt.Errorf("%w: tensor %q: offsets [%d, %d) hold %d bytes, its %s%v needs %d",
				errNotSafetensors, name, begin, end, end-begin, e.Dtype, e.Shape, nbytes)
		}
		if end > dataLen {
			return stTensors{}, fmt.Errorf("%w: tensor %q ends at byte %d of a %d-byte data section (truncated download?)", errNotSafetensors, name, end, dataLen)
		}
		if out.Bytes+nbytes < out.Bytes {
			return stTensors{}, fmt.Errorf("%w: tensor sizes overflow", errNotSafetensors)
		}
		out.Tensors++
		out.Bytes += nbytes
		out.ByDtype[e.Dtype] += nbytes
	}
	return out, nil
}

// bytes is the tensor's size from its dtype and shape.
func (e stEntry) bytes() (uint64, error) {
	w, ok := stDtypeBits[e.Dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", e.Dtype)
	}
	elems := uint64(1)
	for _, d := range e.Shape {
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 {
			return 0, fmt.Errorf("shape %v overflows", e.Shape)
		}
		elems = lo
	}
	hi, lo := bits.Mul64(elems, w)
	if hi != 0 {
		return 0, fmt.Errorf("shape %v overflows", e.Shape)
	}
	return (lo + 7) / 8, nil
}

// readSafetensorsFile parses the header of the file at path.
func readSafetensorsFile(path string) (stTensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return stTensors{}, err
	}
	defer f.Close()
	size := int64(-1)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	st, err := readSafetensors(f, size)
	if err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// isSafetensorsPath says whether --model names a Hugging Face model (a
// directory, or one of its .safetensors files) rather than a GGUF file.
func isSafetensorsPath(p string) bool {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return true
	}
	return strings.HasSuffix(p, ".safetensors")
}
