// Package wasmtest assembles small WebAssembly modules from Go values, so
// that tests can hand-craft misbehaving policies (infinite loops, traps,
// unbounded growth, missing exports) without a WAT toolchain.
package wasmtest

import "encoding/binary"

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
)

// Func is one function. Exported functions have a non-empty Export name.
type Func struct {
	Export  string
	Params  []byte
	Results []byte
	Locals  []byte // one value type per local
	// Body is the instruction sequence without the final end opcode.
	Body []byte
}

// Import is an imported function.
type Import struct {
	Module, Name string
	Params       []byte
	Results      []byte
}

// Data is an active data segment in memory 0.
type Data struct {
	Offset uint32
	Bytes  []byte
}

// Module describes a module with at most one memory, exported as "memory"
// when MemoryPages > 0.
type Module struct {
	Imports     []Import
	Funcs       []Func
	MemoryPages uint32
	// MemoryMax caps the memory when non-zero.
	MemoryMax uint32
	Data      []Data
	// Start names a function index to run at instantiation, -1 or 0 value
	// with HasStart false for none.
	HasStart bool
	Start    uint32
}

// Encode returns the module's binary form.
func (m Module) Encode() []byte {
	var types [][]byte
	typeIndex := func(params, results []byte) uint32 {
		sig := append(append(append(append([]byte{0x60}, U32(uint32(len(params)))...), params...), U32(uint32(len(results)))...), results...)
		for i, t := range types {
			if string(t) == string(sig) {
				return uint32(i)
			}
		}
		types = append(types, sig)
		return uint32(len(types) - 1)
	}
	var imports, funcs, exports, code [][]byte
	for _, im := range m.Imports {
		e := append(Name(im.Module), Name(im.Name)...)
		e = append(e, 0x00)
		e = append(e, U32(typeIndex(im.Params, im.Results))...)
		imports = append(imports, e)
	}
	for i, f := range m.Funcs {
		funcs = append(funcs, U32(typeIndex(f.Params, f.Results)))
		if f.Export != "" {
			exports = append(exports, append(append(Name(f.Export), 0x00), U32(uint32(len(m.Imports)+i))...))
		}
		var body []byte
		body = append(body, U32(uint32(len(f.Locals)))...)
		for _, l := range f.Locals {
			body = append(body, 0x01, l)
		}
		body = append(body, f.Body...)
		body = append(body, 0x0b)
		code = append(code, append(U32(uint32(len(body))), body...))
	}
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = section(out, 1, types)
	out = section(out, 2, imports)
	out = section(out, 3, funcs)
	if m.MemoryPages > 0 {
		lim := append([]byte{0x00}, U32(m.MemoryPages)...)
		if m.MemoryMax > 0 {
			lim = append(append([]byte{0x01}, U32(m.MemoryPages)...), U32(m.MemoryMax)...)
		}
		out = section(out, 5, [][]byte{lim})
		exports = append(exports, append(append(Name("memory"), 0x02), 0x00))
	}
	out = section(out, 7, exports)
	if m.HasStart {
		out = append(out, 8)
		out = append(out, U32(uint32(len(U32(m.Start))))...)
		out = append(out, U32(m.Start)...)
	}
	out = section(out, 10, code)
	var data [][]byte
	for _, d := range m.Data {
		e := append([]byte{0x00, 0x41}, S32(int32(d.Offset))...)
		e = append(e, 0x0b)
		e = append(e, U32(uint32(len(d.Bytes)))...)
		data = append(data, append(e, d.Bytes...))
	}
	out = section(out, 11, data)
	return out
}

func section(out []byte, id byte, entries [][]byte) []byte {
	if len(entries) == 0 {
		return out
	}
	payload := U32(uint32(len(entries)))
	for _, e := range entries {
		payload = append(payload, e...)
	}
	out = append(out, id)
	out = append(out, U32(uint32(len(payload)))...)
	return append(out, payload...)
}

// Name encodes a name as a length-prefixed byte vector.
func Name(s string) []byte { return append(U32(uint32(len(s))), s...) }

// U32 encodes v as unsigned LEB128.
func U32(v uint32) []byte { return binary.AppendUvarint(nil, uint64(v)) }

// S32 encodes v as signed LEB128.
func S32(v int32) []byte { return S64(int64(v)) }

// S64 encodes v as signed LEB128.
func S64(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// Cat concatenates instruction fragments.
func Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Common instructions.
var (
	Unreachable = []byte{0x00}
	Drop        = []byte{0x1a}
	// MemoryFill (dst, value, len) and MemoryCopy (dst, src, len) work on
	// memory 0.
	MemoryFill = []byte{0xfc, 0x0b, 0x00}
	MemoryCopy = []byte{0xfc, 0x0a, 0x00, 0x00}
	// MemoryGrow (pages) returns the old size in pages, or -1.
	MemoryGrow = []byte{0x40, 0x00}
)

// I32Const and friends encode single instructions.
func I32Const(v int32) []byte    { return append([]byte{0x41}, S32(v)...) }
func I64Const(v int64) []byte    { return append([]byte{0x42}, S64(v)...) }
func LocalGet(i uint32) []byte   { return append([]byte{0x20}, U32(i)...) }
func LocalSet(i uint32) []byte   { return append([]byte{0x21}, U32(i)...) }
func Call(f uint32) []byte       { return append([]byte{0x10}, U32(f)...) }
func Br(depth uint32) []byte     { return append([]byte{0x0c}, U32(depth)...) }
func BrIf(depth uint32) []byte   { return append([]byte{0x0d}, U32(depth)...) }
func Loop(body ...[]byte) []byte { return append(append([]byte{0x03, 0x40}, Cat(body...)...), 0x0b) }

// StraightLine returns about n instructions without a branch: n/6
// increments of words in memory 0 (its first 256 bytes), work that a
// compiler cannot drop.
func StraightLine(n int) []byte {
	var out []byte
	for i := 0; i < n/6; i++ {
		a := I32Const(int32(i%64) * 4)
		out = append(out, a...)
		out = append(out, a...)
		out = append(out, 0x28, 0x02, 0x00) // i32.load
		out = append(out, I32Const(1)...)
		out = append(out, 0x6a)             // i32.add
		out = append(out, 0x36, 0x02, 0x00) // i32.store
	}
	return out
}

// PolicyFuncs returns the exports every ABI v1 policy needs, with evaluate
// as given. The request buffer lives at offset 1024 of a one-page memory.
func PolicyFuncs(evaluateBody []byte, evaluateLocals ...byte) []Func {
	return []Func{
		{Export: "kvhost_abi_version", Results: []byte{I32}, Body: I32Const(1)},
		{Export: "kvhost_request_buffer", Params: []byte{I32}, Results: []byte{I32}, Body: I32Const(1024)},
		{Export: "kvhost_init", Params: []byte{I32, I32}, Results: []byte{I64}, Body: I64Const(0)},
		{Export: "kvhost_evaluate", Params: []byte{I32}, Results: []byte{I64}, Locals: evaluateLocals, Body: evaluateBody},
	}
}
