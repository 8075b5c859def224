package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// sample builds a small valid file with every metadata type and two tensors.
func sample(t testing.TB) []byte {
	var w Writer
	w.Set("general.architecture", "llama")
	w.Set("u8", uint8(7))
	w.Set("i8", int8(-7))
	w.Set("u16", uint16(700))
	w.Set("i16", int16(-700))
	w.Set("u32", uint32(70000))
	w.Set("i32", int32(-70000))
	w.Set("f32", float32(1.5))
	w.Set("b", true)
	w.Set("u64", uint64(1)<<40)
	w.Set("i64", int64(-1)<<40)
	w.Set("f64", 2.25)
	w.Set("strs", []string{"a", "bc", ""})
	w.Set("f32s", []float32{1, -2, 3.5})
	w.Set("i32s", []int32{1, -2, 3})
	f32 := make([]byte, 4*8)
	for i := range 8 {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(i)))
	}
	if err := w.AddTensor("a.weight", F32, []uint64{4, 2}, f32); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("b.weight", Q8_0, []uint64{32, 1}, make([]byte, 34)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	f, err := Parse(sample(t))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture %q", s)
	}
	for k, want := range map[string]uint64{"u8": 7, "u16": 700, "u32": 70000, "u64": 1 << 40, "b": 1} {
		if v, ok := f.Uint(k); !ok || v != want {
			t.Errorf("%s = %d, %v", k, v, ok)
		}
	}
	if _, ok := f.Uint("i32"); ok {
		t.Error("negative int32 reported as uint")
	}
	if v, _ := f.Float("f64"); v != 2.25 {
		t.Errorf("f64 %v", v)
	}
	if v, _ := f.Float32s("f32s"); len(v) != 3 || v[2] != 3.5 {
		t.Errorf("f32s %v", v)
	}
	if v, _ := f.Int32s("i32s"); len(v) != 3 || v[1] != -2 {
		t.Errorf("i32s %v", v)
	}
	if v, _ := f.Strings("strs"); strings.Join(v, ",") != "a,bc," {
		t.Errorf("strs %v", v)
	}
	a, ok := f.Tensor("a.weight")
	if !ok || a.Elements() != 8 || a.Size != 32 {
		t.Fatalf("tensor a %+v", a)
	}
	if got := math.Float32frombits(binary.LittleEndian.Uint32(f.Data(a)[4*5:])); got != 5 {
		t.Errorf("a[5] = %v", got)
	}
	if b, _ := f.Tensor("b.weight"); b.Offset%DefaultAlignment != 0 || len(f.Data(b)) != 34 {
		t.Errorf("tensor b %+v", b)
	}
}

func TestMalformed(t *testing.T) {
	good := sample(t)
	le := binary.LittleEndian
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, b := range map[string][]byte{
		"empty":      nil,
		"magic":      mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":    mut(func(b []byte) []byte { le.PutUint32(b[4:], 9); return b }),
		"huge kv":    mut(func(b []byte) []byte { le.PutUint64(b[16:], 1<<62); return b }),
		"huge ts":    mut(func(b []byte) []byte { le.PutUint64(b[8:], 1<<62); return b }),
		"truncated":  good[:len(good)-40],
		"header cut": good[:40],
		"key len":    mut(func(b []byte) []byte { le.PutUint64(b[24:], 1<<60); return b }),
	} {
		_, err := Parse(b)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

// FuzzParse: any input either parses into a file whose tensor data lies
// inside it, or fails with ErrFormat; never a panic or a runaway allocation.
func FuzzParse(f *testing.F) {
	good := sample(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Add(append([]byte("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"), good[16:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		for i := range file.Tensors {
			d := file.Data(&file.Tensors[i])
			if uint64(len(d)) != file.Tensors[i].Size {
				t.Fatalf("tensor %d data %d bytes, size %d", i, len(d), file.Tensors[i].Size)
			}
		}
	})
}
