// Package wasmguard rewrites a WebAssembly module so that the host can
// hold it to a deadline without wazero's per-call watchdog goroutine.
//
// Instrument adds two mutable i32 globals, the countdown and a scratch,
// and two imported functions: the check (ImportModule.ImportName, type
// () -> ()) and the grow (ImportModule.GrowName, type (i32) -> (i32)).
// At the entry of every function and at the head of every loop
// it inserts a charge of the work that may follow before the next charge:
//
//	countdown = countdown - cost
//	if countdown <= 0 {
//		countdown = Interval
//		call check
//	}
//
// The cost of a function entry or a loop head is weighed by the code it
// covers: one step plus one per InstrsPerStep instructions of the
// function's (or loop's) own body, nested loops excluded, since they
// charge for themselves. Within one iteration control only moves forward
// until the loop branches back to its head, so an iteration executes each
// of those instructions at most once: a loop with a long straight-line
// body pays for all of it on every iteration. Bulk instructions, whose
// work grows with an operand (memory.fill, memory.copy, memory.init and
// the table bulk operations), are charged by that length just before they
// run: one step per BytesPerStep bytes (elements count as 8 bytes), plus
// one.
//
// Every memory.grow becomes a call of the grow import, which has the
// instruction's signature: the host grows the memory itself, so it sees
// every request (those it refuses too), can hold the memory to its cap
// and counts the time a grow takes against the deadline.
//
// Any execution that does not terminate iterates a loop or calls
// functions without end, so it calls the check at least every Interval
// steps of work. The host's check compares the clock with the
// evaluation's deadline and aborts the call (by panicking) once it has
// passed.
//
// Why a call back into Go rather than a flag that a watchdog goroutine
// sets: compiled wasm is not preemptible by the Go scheduler. With every P
// running a runaway instance, no watchdog goroutine would ever be
// scheduled. The check is a Go function call, so it is also a preemption
// point, and it needs no other goroutine at all. Between checks the cost
// is a subtraction and a branch (docs/RATIONALE.md, "Policy deadlines").
//
// Adding imports shifts the index of every function the module defines
// by two, so Instrument renumbers calls, ref.func, exports, element
// segments, global initialisers and the function names of the name
// section. Only the WebAssembly 2.0 instruction set that wazero enables
// by default is understood; a module using anything else is refused, as
// wazero would refuse it.
package wasmguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The imported functions: the check, and the grow that replaces
// memory.grow.
const (
	ImportModule = "kvhost"
	ImportName   = "__kvhost_check"
	GrowName     = "__kvhost_grow"
)

// imports is the number of functions Instrument imports.
const imports = 2

// Interval is the number of steps between two calls of the check. A step
// is one loop iteration or function entry of up to InstrsPerStep
// instructions, or BytesPerStep bytes of a bulk memory operation: a few
// nanoseconds of work, so that the check runs every few tens of
// microseconds of busy code, and an ordinary policy evaluation rarely
// reaches it.
const Interval = 10000

// Weights of a step.
const (
	// InstrsPerStep instructions of a loop's or function's body add one
	// step to its charge.
	InstrsPerStep = 1 << instrShift
	// BytesPerStep bytes of a bulk memory operation cost one step.
	BytesPerStep = 1 << byteShift

	instrShift = 8
	byteShift  = 10
)

// Stats says what Instrument did.
type Stats struct {
	Functions int // functions given an entry check
	Loops     int // loops given a header check
	Bulk      int // bulk memory and table instructions given a charge
	Grows     int // memory.grow instructions turned into calls of the grow import
}

// Section ids.
const (
	secCustom  = 0
	secType    = 1
	secImport  = 2
	secGlobal  = 6
	secExport  = 7
	secStart   = 8
	secElement = 9
	secCode    = 10
)

// order gives each known section id its position in a valid module; the
// tag section (13) sits between memory and global and data count (12)
// between element and code.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

type section struct {
	id      byte
	payload []byte
}

// rewriter holds what the rewrite of one module needs.
type rewriter struct {
	importedFuncs uint32 // functions imported by the original module
	globals       uint32 // globals of the original module
	countdown     uint32 // our globals
	scratch       uint32
	check, grow   uint32 // our imports
	st            Stats
	costs         []uint32 // per function being copied: entry, then each loop
}

func (w *rewriter) shift(f uint32) uint32 {
	if f >= w.importedFuncs {
		return f + imports
	}
	return f
}

// Instrument returns a copy of the module with deadline checks inserted.
// It refuses modules with a start section: their start function would
// run during instantiation, outside any deadline.
func Instrument(bin []byte) ([]byte, Stats, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, Stats{}, errors.New("not a WebAssembly module (bad magic number)")
	}
	if v := binary.LittleEndian.Uint32(bin[4:8]); v != 1 {
		return nil, Stats{}, fmt.Errorf("unsupported WebAssembly binary version %d (want 1; components are not supported)", v)
	}
	var sections []section
	r := reader{b: bin, pos: 8}
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, Stats{}, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %w", id, err)
		}
		payload, err := r.bytes(int(size))
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %w", id, err)
		}
		if _, ok := order[id]; !ok && id != secCustom {
			return nil, Stats{}, fmt.Errorf("unknown section id %d", id)
		}
		if err := checkCount(id, payload); err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %w", id, err)
		}
		sections = append(sections, section{id, payload})
	}

	var w rewriter
	var types uint32
	for _, s := range sections {
		var err error
		switch s.id {
		case secStart:
			return nil, Stats{}, errors.New("module has a start section; policies must not run code at instantiation (export _initialize instead)")
		case secType:
			types, err = vecLen(s.payload)
		case secImport:
			var globals uint32
			w.importedFuncs, globals, err = scanImports(s.payload)
			w.globals += globals
		case secGlobal:
			var n uint32
			n, err = vecLen(s.payload)
			w.globals += n
		}
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	w.countdown = w.globals // our globals, after the module's
	w.scratch = w.globals + 1
	w.check = w.importedFuncs // our imports, after the module's
	w.grow = w.importedFuncs + 1

	newType := []byte{0x60, 0x00, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f} // () -> (), (i32) -> (i32)
	newImport := appendName(appendName(nil, ImportModule), ImportName)
	newImport = binary.AppendUvarint(append(newImport, 0x00), uint64(types))
	newImport = appendName(appendName(newImport, ImportModule), GrowName)
	newImport = binary.AppendUvarint(append(newImport, 0x00), uint64(types)+1)
	newGlobal := append([]byte{0x7f, 0x01, 0x41}, sleb(Interval)...)
	newGlobal = append(newGlobal, 0x0b)
	newGlobal = append(newGlobal, 0x7f, 0x01, 0x41, 0x00, 0x0b) // the scratch

	var out []section
	have := map[byte]bool{}
	added := map[byte][]byte{secType: newType, secImport: newImport, secGlobal: newGlobal}
	insertMissing := func(before int) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !have[id] && before > order[id] {
				out = append(out, section{id, append([]byte{2}, added[id]...)})
				have[id] = true
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			insertMissing(order[s.id])
		}
		var p []byte
		var err error
		switch s.id {
		case secCustom:
			p, err = w.custom(s.payload)
			if p == nil && err == nil {
				continue // dropped
			}
		case secType, secImport:
			p, err = appendEntries(s.payload, 2, added[s.id])
		case secGlobal:
			p, err = w.globalSection(s.payload, newGlobal)
		case secExport:
			p, err = w.exports(s.payload)
		case secElement:
			p, err = w.elements(s.payload)
		case secCode:
			p, err = w.code(s.payload)
		default:
			p = s.payload
		}
		if err != nil {
			return nil, Stats{}, fmt.Errorf("section %d: %w", s.id, err)
		}
		have[s.id] = true
		out = append(out, section{s.id, p})
	}
	insertMissing(1 << 30)

	res := make([]byte, 0, len(bin)+(w.st.Functions+w.st.Loops+w.st.Bulk)*checkSize+64)
	res = append(res, bin[:8]...)
	for _, s := range out {
		res = append(res, s.id)
		res = binary.AppendUvarint(res, uint64(len(s.payload)))
		res = append(res, s.payload...)
	}
	return res, w.st, nil
}

// checkSize bounds the length of one inserted sequence.
const checkSize = 48

// appendCharge appends the charge of cost steps and the check.
func (w *rewriter) appendCharge(c []byte, cost uint32) []byte {
	c = append(c, 0x23)                               // global.get $countdown
	c = binary.AppendUvarint(c, uint64(w.countdown))  //
	c = append(append(c, 0x41), sleb(int64(cost))...) // i32.const cost
	c = append(c, 0x6b)                               // i32.sub
	return w.appendTest(c)
}

// appendBulkCharge appends, before a bulk instruction whose length is on
// top of the stack, the charge of that length and the check. shift turns
// the length into steps.
func (w *rewriter) appendBulkCharge(c []byte, shift int64) []byte {
	s := binary.AppendUvarint(nil, uint64(w.scratch))
	c = append(append(c, 0x24), s...)                // global.set $scratch
	c = append(append(c, 0x23), s...)                // global.get $scratch (the operand again)
	c = append(c, 0x23)                              // global.get $countdown
	c = binary.AppendUvarint(c, uint64(w.countdown)) //
	c = append(append(c, 0x23), s...)                // global.get $scratch
	c = append(append(c, 0x41), sleb(shift)...)      // i32.const shift
	c = append(c, 0x76, 0x6b, 0x41, 0x01, 0x6b)      // i32.shr_u; i32.sub; i32.const 1; i32.sub
	return w.appendTest(c)
}

// appendTest stores the new countdown (on the stack) and calls the check
// when it has run out. The countdown never falls below -2^31: it is
// positive before a charge, and a charge is below 2^31.
func (w *rewriter) appendTest(c []byte) []byte {
	g := binary.AppendUvarint(nil, uint64(w.countdown))
	c = append(append(c, 0x24), g...) // global.set $countdown
	c = append(append(c, 0x23), g...) // global.get $countdown
	c = append(c, 0x41, 0x01, 0x48)   // i32.const 1; i32.lt_s
	c = append(c, 0x04, 0x40)         // if
	c = append(append(c, 0x41), sleb(Interval)...)
	c = append(append(c, 0x24), g...)            // global.set $countdown
	c = append(c, 0x10)                          // call $check
	c = binary.AppendUvarint(c, uint64(w.check)) //
	return append(c, 0x0b)                       // end
}

// steps is the charge of a body of n instructions.
func steps(n uint32) uint32 { return 1 + n>>instrShift }

func sleb(v int64) []byte {
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

// checkCount refuses a vector section that claims more entries than it
// has bytes (each entry takes at least one). wazero's decoder allocates
// for the claimed count before reading any entry: a 40-byte module
// claiming 2^32 data segments made it allocate 75 GB and crash the host.
func checkCount(id byte, payload []byte) error {
	switch id {
	case secCustom, secStart, 12: // not vectors (12: data count)
		return nil
	}
	n, err := vecLen(payload)
	if err != nil {
		return err
	}
	if uint64(n) > uint64(len(payload)) {
		return fmt.Errorf("%d entries claimed in %d bytes", n, len(payload))
	}
	return nil
}

func vecLen(payload []byte) (uint32, error) {
	r := reader{b: payload}
	return r.u32()
}

// appendEntries adds n entries to a vector section.
func appendEntries(payload []byte, n uint32, entries []byte) ([]byte, error) {
	r := reader{b: payload}
	have, err := r.u32()
	if err != nil {
		return nil, err
	}
	p := binary.AppendUvarint(nil, uint64(have)+uint64(n))
	p = append(p, payload[r.pos:]...)
	return append(p, entries...), nil
}

func appendName(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// scanImports counts imported functions and globals, and refuses a module
// that imports the check or the grow itself.
func scanImports(payload []byte) (funcs, globals uint32, err error) {
	r := reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return 0, 0, err
	}
	for i := uint32(0); i < n; i++ {
		mod, err := r.name()
		if err != nil {
			return 0, 0, err
		}
		name, err := r.name()
		if err != nil {
			return 0, 0, err
		}
		if mod == ImportModule && (name == ImportName || name == GrowName) {
			return 0, 0, fmt.Errorf("module imports %s.%s, a name reserved for the host", mod, name)
		}
		kind, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		switch kind {
		case 0x00: // function: type index
			funcs++
			err = r.skipLEB()
		case 0x01: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = r.skipLimits()
			}
		case 0x02: // memory: limits
			err = r.skipLimits()
		case 0x03: // global: valtype, mutability
			globals++
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
		default:
			return 0, 0, fmt.Errorf("import %d: unsupported kind 0x%02x", i, kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("import %d: %w", i, err)
		}
	}
	return funcs, globals, nil
}

// globalSection renumbers ref.func in initialisers and appends ours.
func (w *rewriter) globalSection(payload, newGlobal []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(n)+2) // ours: countdown and scratch
	for i := uint32(0); i < n; i++ {
		typ, err := r.bytes(2) // valtype, mutability
		if err != nil {
			return nil, err
		}
		out = append(out, typ...)
		if out, err = w.expr(out, &r); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return append(out, newGlobal...), nil
}

func (w *rewriter) exports(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n; i++ {
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		kind, err := r.byte()
		if err != nil {
			return nil, err
		}
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		if kind == 0x00 {
			idx = w.shift(idx)
		}
		out = appendName(out, name)
		out = binary.AppendUvarint(append(out, kind), uint64(idx))
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// elements renumbers the function indices of element segments.
func (w *rewriter) elements(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return nil, err
		}
		if flags > 7 {
			return nil, fmt.Errorf("element %d: unknown flags %d", i, flags)
		}
		out = binary.AppendUvarint(out, uint64(flags))
		if flags == 2 || flags == 6 { // explicit table index
			t, err := r.u32()
			if err != nil {
				return nil, err
			}
			out = binary.AppendUvarint(out, uint64(t))
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = w.expr(out, &r); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
		if flags&3 != 0 { // elemkind or reftype byte
			b, err := r.byte()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		cnt, err := r.u32()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(cnt))
		for j := uint32(0); j < cnt; j++ {
			if flags&4 == 0 { // function indices
				f, err := r.u32()
				if err != nil {
					return nil, err
				}
				out = binary.AppendUvarint(out, uint64(w.shift(f)))
			} else if out, err = w.expr(out, &r); err != nil { // expressions
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// expr copies a constant expression, renumbering ref.func.
func (w *rewriter) expr(out []byte, r *reader) ([]byte, error) {
	start := r.pos
	if _, err := w.walk(r, true); err != nil {
		return nil, err
	}
	return w.copyRewritten(out, r.b[start:r.pos], true)
}

// custom keeps custom sections except debug information, whose code
// offsets the rewrite moves, and renumbers the name section's functions.
func (w *rewriter) custom(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	name, err := r.name()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(name, ".debug_"), name == "sourceMappingURL", name == "external_debug_info":
		return nil, nil
	case name != "name":
		return payload, nil
	}
	out := append([]byte(nil), payload[:r.pos]...)
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		sub, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		switch id {
		case 0: // module name
		case 1: // function names: renumber
			if sub, err = w.nameMap(sub); err != nil {
				return nil, fmt.Errorf("name section: %w", err)
			}
		default: // local, label and other names: dropped, not worth renumbering
			continue
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(sub)))
		out = append(out, sub...)
	}
	return out, nil
}

func (w *rewriter) nameMap(b []byte) ([]byte, error) {
	r := reader{b: b}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n; i++ {
		idx, err := r.u32()
		if err != nil {
			return nil, err
		}
		name, err := r.name()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(w.shift(idx)))
		out = appendName(out, name)
	}
	return out, nil
}

func (w *rewriter) code(payload []byte) ([]byte, error) {
	r := reader{b: payload}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	// n comes from the input: each function takes at least a byte.
	out := make([]byte, 0, len(payload)+min(int(n), len(payload))*checkSize*2)
	out = binary.AppendUvarint(out, uint64(n))
	var body []byte
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		b, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		br := reader{b: b}
		groups, err := br.u32()
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		for g := uint32(0); g < groups; g++ {
			if err := br.skipLEB(); err != nil { // count
				return nil, fmt.Errorf("function %d: %w", i, err)
			}
			if _, err := br.byte(); err != nil { // value type
				return nil, fmt.Errorf("function %d: %w", i, err)
			}
		}
		instrStart := br.pos
		if err := w.weigh(&br); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		if !br.done() {
			return nil, fmt.Errorf("function %d: bytes after the final end", i)
		}
		body = append(body[:0], b[:instrStart]...)
		body = w.appendCharge(body, w.costs[0])
		w.st.Functions++
		if body, err = w.copyRewritten(body, b[instrStart:], false); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	if !r.done() {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

// weigh validates a function body and sets w.costs to the charge of its
// entry followed by that of each of its loops, in order: one step plus
// one per InstrsPerStep instructions of the function's or loop's own
// code, that of nested loops excluded.
func (w *rewriter) weigh(r *reader) error {
	w.costs = append(w.costs[:0], 0)
	regions := []int{0} // w.costs index of the innermost function or loop
	var blocks []int    // per open block: its w.costs index if a loop, else -1
	_, err := w.visit(r, false, func(op byte, _, _ int, _ uint32) {
		w.costs[regions[len(regions)-1]]++
		switch op {
		case 0x02, 0x04: // block, if
			blocks = append(blocks, -1)
		case 0x03: // loop
			w.costs = append(w.costs, 0)
			blocks = append(blocks, len(w.costs)-1)
			regions = append(regions, len(w.costs)-1)
		case 0x0b: // end (the function's own end closes no block)
			if len(blocks) > 0 {
				if blocks[len(blocks)-1] >= 0 {
					regions = regions[:len(regions)-1]
				}
				blocks = blocks[:len(blocks)-1]
			}
		}
	})
	for i, n := range w.costs {
		w.costs[i] = steps(n)
	}
	return err
}

// walk validates an instruction sequence up to its final end and returns
// its end offset. It refuses references to globals the module does not
// have (they would reach ours).
func (w *rewriter) walk(r *reader, constExpr bool) (int, error) {
	return w.visit(r, constExpr, nil)
}

// Sub-opcodes of 0xfc whose work grows with the length on top of the
// stack, and the shift that turns that length into steps.
var bulkShift = map[uint32]int64{
	8:  byteShift,     // memory.init
	10: byteShift,     // memory.copy
	11: byteShift,     // memory.fill
	12: byteShift - 3, // table.init
	14: byteShift - 3, // table.copy
	15: byteShift - 3, // table.grow
	17: byteShift - 3, // table.fill
}

// copyRewritten re-walks code (already validated) and appends it to out
// with function indices renumbered and, unless constExpr, a charge after
// every loop header (costs from weigh), before every bulk instruction, and
// memory.grow turned into a call of the grow import.
func (w *rewriter) copyRewritten(out, code []byte, constExpr bool) ([]byte, error) {
	r := reader{b: code}
	copied := 0
	loops := 0
	_, err := w.visit(&r, constExpr, func(op byte, at, immStart int, f uint32) {
		if constExpr {
			if op == 0x10 || op == 0xd2 {
				out = append(out, code[copied:immStart]...)
				out = binary.AppendUvarint(out, uint64(w.shift(f)))
				copied = r.pos
			}
			return
		}
		switch op {
		case 0x03: // loop: charge after the block type
			loops++
			out = append(out, code[copied:r.pos]...)
			out = w.appendCharge(out, w.costs[loops])
			copied = r.pos
			w.st.Loops++
		case 0x10, 0xd2: // call, ref.func: renumber
			out = append(out, code[copied:immStart]...)
			out = binary.AppendUvarint(out, uint64(w.shift(f)))
			copied = r.pos
		case 0x40: // memory.grow: call $grow, same stack effect
			out = append(out, code[copied:at]...)
			out = append(out, 0x10)
			out = binary.AppendUvarint(out, uint64(w.grow))
			copied = r.pos
			w.st.Grows++
		case 0xfc: // f is the sub-opcode
			if shift, ok := bulkShift[f]; ok {
				out = append(out, code[copied:at]...)
				out = w.appendBulkCharge(out, shift)
				copied = at
				w.st.Bulk++
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return append(out, code[copied:]...), nil
}

// visit decodes instructions until the end closing the sequence, calling
// hook after each (final end included) with its opcode, its offset, the
// offset of its immediates and, for call and ref.func, the function index,
// for 0xfc the sub-opcode.
func (w *rewriter) visit(r *reader, constExpr bool, hook func(op byte, at, immStart int, f uint32)) (int, error) {
	depth := 0
	for {
		if r.done() {
			return 0, errors.New("code ends without end opcode")
		}
		at := r.pos
		op, _ := r.byte()
		imm := r.pos
		var f uint32
		var err error
		switch {
		case op == 0x02 || op == 0x04: // block, if
			depth++
			err = r.skipLEB()
		case op == 0x03: // loop
			depth++
			err = r.skipLEB()
		case op == 0x0b: // end
			if depth == 0 {
				if hook != nil {
					hook(op, at, imm, 0)
				}
				return r.pos, nil
			}
			depth--
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b:
			// unreachable, nop, else, return, drop, select: no immediates
		case op == 0x0c || op == 0x0d: // br, br_if
			err = r.skipLEB()
		case op == 0x10 || op == 0xd2: // call f, ref.func f
			f, err = r.u32()
		case op == 0x0e: // br_table
			var n uint32
			if n, err = r.u32(); err == nil {
				for i := uint32(0); i <= n && err == nil; i++ {
					err = r.skipLEB()
				}
			}
		case op == 0x11: // call_indirect: type, table
			if err = r.skipLEB(); err == nil {
				err = r.skipLEB()
			}
		case op == 0x1c: // select t*
			var n uint32
			if n, err = r.u32(); err == nil {
				_, err = r.bytes(int(n))
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			var g uint32
			if g, err = r.u32(); err == nil && g >= w.globals {
				err = fmt.Errorf("global %d does not exist", g)
			}
		case op >= 0x20 && op <= 0x26: // local.*, table.get/set
			err = r.skipLEB()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			err = r.skipMemarg()
		case op == 0x3f: // memory.size
			err = r.skipLEB()
		case op == 0x40: // memory.grow: only of memory 0, which the grow import serves
			var m uint32
			if m, err = r.u32(); err == nil && m != 0 {
				err = fmt.Errorf("memory.grow of memory %d (multi-memory is not supported)", m)
			}
		case op == 0x41 || op == 0x42: // i32.const, i64.const
			err = r.skipLEB()
		case op == 0x43:
			_, err = r.bytes(4)
		case op == 0x44:
			_, err = r.bytes(8)
		case op >= 0x45 && op <= 0xc4: // numeric, sign extension
		case op == 0xd0: // ref.null t
			err = r.skipLEB()
		case op == 0xd1: // ref.is_null
		case op == 0xfc:
			f, err = r.skipMisc()
		case op == 0xfd:
			err = r.skipSIMD()
		default:
			return 0, fmt.Errorf("unsupported instruction 0x%02x at offset %d", op, at)
		}
		if err != nil {
			return 0, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, at, err)
		}
		if constExpr && depth > 0 {
			return 0, errors.New("block in a constant expression")
		}
		if hook != nil {
			hook(op, at, imm, f)
		}
	}
}

type reader struct {
	b   []byte
	pos int
}

var errTruncated = errors.New("unexpected end of data")

func (r *reader) done() bool { return r.pos >= len(r.b) }

func (r *reader) byte() (byte, error) {
	if r.pos >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.pos {
		return nil, errTruncated
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s, nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	return string(b), err
}

func (r *reader) u32() (uint32, error) {
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		return 0, errors.New("bad LEB128 integer")
	}
	r.pos += n
	return uint32(v), nil
}

// skipLEB skips one LEB128 integer of up to 64 bits, signed or not.
func (r *reader) skipLEB() error {
	for i := 0; i < 10; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 integer too long")
}

func (r *reader) skipLimits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.skipLEB(); err != nil {
		return err
	}
	if flags&0x01 != 0 {
		return r.skipLEB()
	}
	return nil
}

func (r *reader) skipMemarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 { // multi-memory: a memory index follows
		if err := r.skipLEB(); err != nil {
			return err
		}
	}
	return r.skipLEB()
}

// skipMisc skips a 0xfc instruction after its prefix and returns its
// sub-opcode.
func (r *reader) skipMisc() (uint32, error) {
	sub, err := r.u32()
	if err != nil {
		return 0, err
	}
	switch {
	case sub <= 7: // saturating truncation
		return sub, nil
	case sub == 9 || sub == 11 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		return sub, r.skipLEB()
	case sub == 8 || sub == 10 || sub == 12 || sub == 14:
		if err := r.skipLEB(); err != nil {
			return 0, err
		}
		return sub, r.skipLEB()
	}
	return 0, fmt.Errorf("unsupported instruction 0xfc %d", sub)
}

func (r *reader) skipSIMD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b || sub == 0x5c || sub == 0x5d: // loads, store
		return r.skipMemarg()
	case sub == 0x0c || sub == 0x0d: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract/replace lane
		_, err := r.byte()
		return err
	case sub >= 0x54 && sub <= 0x5b: // load/store lane
		if err := r.skipMemarg(); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0xff:
		return nil
	}
	return fmt.Errorf("unsupported instruction 0xfd %d", sub)
}
