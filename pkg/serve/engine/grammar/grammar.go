// Package grammar constrains sampling to JSON: a byte-level pushdown
// recognizer for JSON values, either any JSON object (response_format
// json_object) or values of a JSON Schema subset (json_schema), and a mask
// that keeps only the tokens whose bytes the recognizer accepts.
//
// The recognizer emits compact JSON (no whitespace between tokens), objects
// with every schema property in schema order, and numbers of bounded length;
// each is still JSON that parses and validates. Masking also keeps the
// answer finishable within the token budget: a token is allowed only when
// the shortest completion after it still fits in the tokens left, so an
// answer cut by max_tokens is still a whole value.
package grammar

import "slices"

// MaxDepth bounds the nesting of constrained output (and of schemas).
const MaxDepth = 16

// Number lengths are bounded so a value always ends.
const (
	maxIntDigits  = 16
	maxFracDigits = 16
	maxExpDigits  = 2 // 1e99 at most: every parser reads it as a float64
)

type kind uint8

const (
	kAny       kind = iota // any JSON value
	kObjectAny             // an object with any keys and values
	kObject                // schema properties, all, in order
	kArray
	kString
	kNumber
	kInteger
	kLiterals // enum, const, boolean, null: one of a few JSON texts
	kAlts     // one of several prefix literal, value, suffix literal (tool calls)
	kAnyOf    // any of several values (anyOf, oneOf): the run forks
	kNever    // no value: a recursion cut at the depth bound
)

// node is one compiled schema node.
type node struct {
	kind kind
	// kObject: props[i] is the property's value node, names[i] its name
	// and keys[i] its literal `"name":` (with a leading comma after the
	// first).
	props []*node
	names []string
	keys  []string
	// kArray
	items              *node
	minItems, maxItems int // maxItems < 0: unbounded
	// kString
	minLen, maxLen int // characters; maxLen < 0: unbounded
	// kLiterals; kAlts: prefixes, with alts and suffixes beside them;
	// kAnyOf: alts only.
	lits     []string
	alts     []*node
	suffixes []string
	// minBytes is the length of this node's shortest value.
	minBytes int
	// types are the JSON types of the values the schema allows.
	types uint8
	// restMin[i] (kObject) is the shortest text that finishes the object
	// once property i's key is about to be written: keys and values i..n-1
	// and the closing brace.
	restMin []int
}

// Grammar is a compiled constraint; Start makes a recognizer for one answer.
type Grammar struct {
	root *node
}

// JSONObject is the response_format json_object grammar: any JSON object.
func JSONObject() *Grammar {
	return &Grammar{root: finish(&node{kind: kObjectAny})}
}

// finish computes minBytes and restMin for n and below.
func finish(n *node) *node {
	switch n.kind {
	case kAny:
		n.minBytes = 1 // a digit
	case kObjectAny:
		n.minBytes = 2
	case kObject:
		n.restMin = make([]int, len(n.props)+1)
		n.restMin[len(n.props)] = 1
		for i := len(n.props) - 1; i >= 0; i-- {
			n.restMin[i] = n.restMin[i+1] + len(n.keys[i]) + n.props[i].minBytes
		}
		n.minBytes = 1 + n.restMin[0]
	case kArray:
		n.minBytes = 2
		if n.minItems > 0 {
			n.minBytes += n.minItems*n.items.minBytes + n.minItems - 1
		}
	case kString:
		n.minBytes = 2 + n.minLen
	case kNumber, kInteger:
		n.minBytes = 1
	case kLiterals:
		n.minBytes = len(n.lits[0])
		for _, l := range n.lits[1:] {
			n.minBytes = min(n.minBytes, len(l))
		}
	case kAnyOf:
		n.minBytes = n.alts[0].minBytes
		for _, a := range n.alts[1:] {
			n.minBytes = min(n.minBytes, a.minBytes)
		}
	case kNever:
		n.minBytes = neverBytes
	case kAlts:
		n.minBytes = -1
		for i, l := range n.lits {
			if m := len(l) + n.alts[i].minBytes + len(n.suffixes[i]); n.minBytes < 0 || m < n.minBytes {
				n.minBytes = m
			}
		}
	}
	return n
}

// frame is one open value. Phases are per kind (see step).
type frame struct {
	n     *node
	k     kind // n.kind, or what kAny became
	phase uint8
	i     int32 // property index, item count, character count, alive literals
	aux   int32 // position in a key literal or literal, digits, UTF-8 bytes pending
}

// neverBytes stands for "no finite value" in length arithmetic.
const neverBytes = 1 << 40

// maxRuns bounds the alternatives followed at once; beyond it the later
// ones are dropped, which only narrows what may be written.
const maxRuns = 32

// run is one way of reading the answer: a stack of open values. It is a
// comparable value: copying it forks it.
type run struct {
	stack [MaxDepth + 2]frame // +2: a string key inside an object at MaxDepth
	depth int
	done  bool // a whole value was read
}

// State recognizes one answer. Usually one run reads it; while an anyOf
// is undecided, one run per alternative still alive (in more).
type State struct {
	r    run
	more []run
}

// Start returns the recognizer at the beginning of an answer.
func (g *Grammar) Start() State {
	var s State
	s.r.push(g.root)
	return s
}

// Clone returns an independent copy (a plain copy shares the alternatives).
func (s *State) Clone() State {
	if len(s.more) == 0 {
		return State{r: s.r}
	}
	return State{r: s.r, more: append([]run(nil), s.more...)}
}

// fork is an independent copy of s whose alternatives live in *scratch
// (reused from call to call): the cheap way to try a token. The copy is
// returned by value so that it stays on the stack (a heap copy of runs,
// which hold pointers, pays write barriers).
func (s *State) fork(scratch *[]run) State {
	if len(s.more) == 0 {
		return State{r: s.r}
	}
	*scratch = append((*scratch)[:0], s.more...)
	return State{r: s.r, more: *scratch}
}

func newFrame(n *node) frame {
	f := frame{n: n, k: n.kind}
	if n.kind == kLiterals || n.kind == kAlts {
		f.i = 1<<len(n.lits) - 1
	}
	return f
}

func (s *run) push(n *node) bool {
	if s.depth == len(s.stack) {
		return false
	}
	s.stack[s.depth] = newFrame(n)
	s.depth++
	return true
}

// Done reports whether the text so far is a whole value that may end here.
func (s *State) Done() bool {
	if s.r.isDone() {
		return true
	}
	for i := range s.more {
		if s.more[i].isDone() {
			return true
		}
	}
	return false
}

func (s *run) isDone() bool {
	if s.done {
		return true
	}
	return s.depth == 1 && canEnd(&s.stack[0])
}

// Feed advances by the bytes of one token and reports whether they are
// allowed; on false the state is garbage (feed a Clone when trying).
func (s *State) Feed(p []byte) bool {
	for _, b := range p {
		if !s.feed(b) {
			return false
		}
	}
	return true
}

// feed advances every run by b, forking a run at an anyOf into one run per
// alternative and keeping those that accept b.
func (s *State) feed(b byte) bool {
	if len(s.more) == 0 {
		switch s.r.feed(b) {
		case fedOK:
			return true
		case fedReject:
			return false
		}
		// s.r stands just before the split: feeding it again splits
		// again, with nothing consumed.
		var buf [4]run
		return s.set(grow(buf[:0], s.r, b))
	}
	// Several runs: feed each in place (run 0 is s.r, run i is more[i-1]);
	// one that splits stays before b, to be forked below.
	at := func(i int) *run {
		if i == 0 {
			return &s.r
		}
		return &s.more[i-1]
	}
	var ok, split uint64
	for i := 0; i <= len(s.more); i++ {
		switch at(i).feed(b) {
		case fedOK:
			ok |= 1 << i
		case fedSplit:
			split |= 1 << i
		}
	}
	if split == 0 {
		if ok == 0 {
			return false
		}
		// Keep the survivors in order, in place.
		n, first := 0, true
		for i := 0; i <= len(s.more); i++ {
			if ok&(1<<i) == 0 {
				continue
			}
			if first {
				s.r, first = *at(i), false
			} else {
				s.more[n] = *at(i)
				n++
			}
		}
		s.more = s.more[:n]
		return true
	}
	var buf [4]run
	out := buf[:0]
	for i := 0; i <= len(s.more); i++ {
		switch {
		case ok&(1<<i) != 0:
			out = keep(out, *at(i))
		case split&(1<<i) != 0:
			out = grow(out, *at(i), b)
		}
	}
	return s.set(out)
}

// set makes out the runs (false when there are none).
func (s *State) set(out []run) bool {
	if len(out) == 0 {
		return false
	}
	s.r = out[0]
	s.more = append(s.more[:0], out[1:]...)
	return true
}

func keep(out []run, r run) []run {
	if len(out) < maxRuns && !slices.Contains(out, r) {
		out = append(out, r)
	}
	return out
}

// grow feeds b to r, forking it at anyOfs, and adds the runs that accept
// b to out (once each, at most maxRuns).
func grow(out []run, r run, b byte) []run {
	switch r.feed(b) {
	case fedOK:
		out = keep(out, r)
	case fedSplit:
		for _, a := range r.stack[r.depth-1].n.alts {
			c := r
			c.stack[c.depth-1] = newFrame(a)
			out = grow(out, c, b)
		}
	}
	return out
}

type result uint8

const (
	reject   result = iota
	consumed        // the byte belongs to the top frame, which goes on
	closed          // the byte closed the top frame
	ended           // the top frame ended before the byte: pop, refeed
	pushed          // the top frame pushed a child: refeed to it
)

type fed uint8

const (
	fedReject fed = iota
	fedOK
	fedSplit // the top frame is an anyOf: fork before feeding b
)

func (s *run) feed(b byte) fed {
	for {
		if s.depth == 0 {
			return fedReject // after the value only end-of-generation
		}
		f := &s.stack[s.depth-1]
		if f.k == kAnyOf {
			return fedSplit
		}
		switch s.step(f, b) {
		case reject:
			return fedReject
		case consumed:
			return fedOK
		case closed:
			s.pop()
			return fedOK
		case ended:
			s.pop()
		case pushed:
		}
	}
}

// pop removes the finished top frame and tells its parent.
func (s *run) pop() {
	s.depth--
	if s.depth == 0 {
		s.done = true
		return
	}
	p := &s.stack[s.depth-1]
	switch p.k {
	case kObject:
		p.i++
		p.aux = 0
		p.phase = 1 // next key literal, or the closing brace
	case kObjectAny:
		if p.phase == 3 { // key read
			p.phase = 4 // expect ':'
		} else { // value read
			p.phase = 5 // expect ',' or '}'
		}
	case kArray:
		p.i++
		p.phase = 2
	case kAlts:
		p.phase, p.aux = 2, 0 // the suffix
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// step feeds b to the top frame f.
func (s *run) step(f *frame, b byte) result {
	switch f.k {
	case kAny:
		switch {
		case b == '{':
			f.k = kObjectAny
		case b == '[':
			f.k = kArray
			f.n = anyArray
		case b == '"':
			f.k = kString
			f.n = anyString
		case b == '-' || isDigit(b):
			f.k = kNumber
		case b == 't' || b == 'f' || b == 'n':
			f.k = kLiterals
			f.n = anyLiterals
			f.i = 1<<len(anyLiterals.lits) - 1
		default:
			return reject
		}
		return s.step(f, b)

	case kObjectAny:
		// 0 '{'; 1 '}' or key; 3 in key (child); 4 ':'; 6 value (child);
		// 5 ',' or '}'; 2 key after ','.
		switch f.phase {
		case 0:
			return opening(f, b, '{')
		case 1, 2:
			if b == '}' && f.phase == 1 {
				return closed
			}
			if b != '"' || s.depth > MaxDepth {
				return reject
			}
			f.phase = 3
			if !s.push(anyString) {
				return reject
			}
			return pushed
		case 4:
			if b != ':' {
				return reject
			}
			f.phase = 6
			if !s.push(anyValue) {
				return reject
			}
			return consumed
		case 5:
			switch b {
			case ',':
				f.phase = 2
				return consumed
			case '}':
				return closed
			}
		}
		return reject

	case kObject:
		// 0 '{'; 1 key literal i at aux (or '}' after the last).
		n := f.n
		switch f.phase {
		case 0:
			return opening(f, b, '{')
		case 1:
			if int(f.i) == len(n.props) {
				if b == '}' {
					return closed
				}
				return reject
			}
			key := n.keys[f.i]
			if key[f.aux] != b {
				return reject
			}
			f.aux++
			if int(f.aux) == len(key) {
				f.phase = 2
				if s.depth > MaxDepth || !s.push(n.props[f.i]) {
					return reject
				}
			}
			return consumed
		}
		return reject

	case kArray:
		// 0 '['; 1 ']' or first item; 2 ',' or ']' after an item; 3 item
		// after ','; 4 an item open (child).
		n := f.n
		switch f.phase {
		case 0:
			return opening(f, b, '[')
		case 1, 3:
			if b == ']' && f.phase == 1 && n.minItems == 0 {
				return closed
			}
			if n.maxItems == 0 {
				return reject
			}
			if s.depth > MaxDepth || !s.push(n.items) {
				return reject
			}
			f.phase = 4 // an item is open
			return pushed
		case 2:
			switch {
			case b == ',' && (n.maxItems < 0 || int(f.i) < n.maxItems):
				f.phase = 3
				return consumed
			case b == ']' && int(f.i) >= n.minItems:
				return closed
			}
		}
		return reject

	case kAlts:
		// 0 prefixes (i: alive, aux: position); 2 suffix of alternative
		// i at aux. The prefixes differ before they end (tool names are
		// quoted), so one survives when its prefix is complete.
		n := f.n
		if f.phase == 2 {
			suf := n.suffixes[f.i]
			if suf[f.aux] != b {
				return reject
			}
			f.aux++
			if int(f.aux) == len(suf) {
				return closed
			}
			return consumed
		}
		var alive int32
		for j, l := range n.lits {
			if f.i&(1<<j) != 0 && int(f.aux) < len(l) && l[f.aux] == b {
				alive |= 1 << j
			}
		}
		if alive == 0 {
			return reject
		}
		f.i = alive
		f.aux++
		for j, l := range n.lits {
			if alive&(1<<j) != 0 && int(f.aux) == len(l) {
				f.i, f.phase = int32(j), 1
				if s.depth > MaxDepth || !s.push(n.alts[j]) {
					return reject
				}
				break
			}
		}
		return consumed

	case kString:
		return stepString(f, b)

	case kNumber, kInteger:
		return stepNumber(f, b)

	case kLiterals:
		lits := f.n.lits
		var alive int32
		for j, l := range lits {
			if f.i&(1<<j) != 0 && int(f.aux) < len(l) && l[f.aux] == b {
				alive |= 1 << j
			}
		}
		if alive == 0 {
			if canEnd(f) {
				return ended
			}
			return reject
		}
		f.i = alive
		f.aux++
		// Closed when the only survivors are complete and none is longer.
		for j, l := range lits {
			if alive&(1<<j) != 0 && int(f.aux) < len(l) {
				return consumed
			}
		}
		if f.n.kind == kLiterals && !numericLiterals(f.n) {
			return closed
		}
		return consumed
	}
	return reject
}

// opening consumes a container's first byte.
func opening(f *frame, b, want byte) result {
	if b != want {
		return reject
	}
	f.phase = 1
	return consumed
}

// numericLiterals: an enum with a number in it cannot close on its last
// byte (1 may go on to 12), so it ends on the next byte instead.
func numericLiterals(n *node) bool {
	for _, l := range n.lits {
		if l != "" && (l[0] == '-' || isDigit(l[0])) {
			return true
		}
	}
	return false
}

// canEnd: the frame is a whole value that ends without a closing byte.
func canEnd(f *frame) bool {
	switch f.k {
	case kNumber, kInteger:
		return f.phase == 2 || f.phase == 3 || f.phase == 5 || f.phase == 8
	case kLiterals:
		for j, l := range f.n.lits {
			if f.i&(1<<j) != 0 && int(f.aux) == len(l) {
				return true
			}
		}
	}
	return false
}

// stepString: phase 0 '"'; 1 in the string; 2 after '\'; 3-6 \u hex
// digits. i counts characters, aux the UTF-8 continuation bytes pending.
func stepString(f *frame, b byte) result {
	n := f.n
	switch f.phase {
	case 0:
		if b != '"' {
			return reject
		}
		f.phase = 1
		return consumed
	case 1:
		if f.aux > 0 {
			// aux: continuation bytes pending (low bits) and, for the
			// first of them, the narrower range UTF-8 allows (<<4).
			lo, hi := byte(0x80), byte(0xBF)
			switch f.aux >> 4 {
			case 1:
				lo = 0xA0
			case 2:
				hi = 0x9F
			case 3:
				lo = 0x90
			case 4:
				hi = 0x8F
			}
			if b < lo || b > hi {
				return reject
			}
			f.aux = f.aux&0xF - 1
			return consumed
		}
		switch {
		case b == '"':
			if int(f.i) < n.minLen {
				return reject
			}
			return closed
		case n.maxLen >= 0 && int(f.i) >= n.maxLen:
			return reject
		case b == '\\':
			f.phase = 2
		case b < 0x20:
			return reject
		case b < 0x80:
		case b >= 0xC2 && b <= 0xDF:
			f.aux = 1
		case b == 0xE0:
			f.aux = 2 | 1<<4 // no overlong forms
		case b == 0xED:
			f.aux = 2 | 2<<4 // no surrogates
		case b >= 0xE1 && b <= 0xEF:
			f.aux = 2
		case b == 0xF0:
			f.aux = 3 | 3<<4
		case b == 0xF4:
			f.aux = 3 | 4<<4 // nothing above U+10FFFF
		case b >= 0xF1 && b <= 0xF3:
			f.aux = 3
		default:
			return reject
		}
		f.i++
		return consumed
	case 2:
		switch b {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			f.phase = 1
			return consumed
		case 'u':
			f.phase = 3
			return consumed
		}
		return reject
	default: // 3..6
		if !isDigit(b) && (b < 'a' || b > 'f') && (b < 'A' || b > 'F') {
			return reject
		}
		f.phase++
		if f.phase == 7 {
			f.phase = 1
		}
		return consumed
	}
}

// stepNumber: 0 start; 1 after '-'; 2 after a leading 0; 3 integer
// digits; 4 after '.'; 5 fraction digits; 6 after 'e'; 7 after the
// exponent's sign; 8 exponent digits. aux counts digits of the part.
func stepNumber(f *frame, b byte) result {
	integer := f.k == kInteger
	switch f.phase {
	case 0, 1:
		switch {
		case b == '-' && f.phase == 0:
			f.phase = 1
		case b == '0':
			f.phase = 2
		case isDigit(b):
			f.phase, f.aux = 3, 1
		default:
			return reject
		}
		return consumed
	case 2, 3:
		switch {
		case f.phase == 3 && isDigit(b) && f.aux < maxIntDigits:
			f.aux++
			return consumed
		case b == '.' && !integer:
			f.phase, f.aux = 4, 0
			return consumed
		case (b == 'e' || b == 'E') && !integer:
			f.phase, f.aux = 6, 0
			return consumed
		}
		return ended
	case 4:
		if !isDigit(b) {
			return reject
		}
		f.phase, f.aux = 5, 1
		return consumed
	case 5:
		switch {
		case isDigit(b) && f.aux < maxFracDigits:
			f.aux++
			return consumed
		case b == 'e' || b == 'E':
			f.phase, f.aux = 6, 0
			return consumed
		}
		return ended
	case 6:
		switch {
		case b == '+' || b == '-':
			f.phase = 7
		case isDigit(b):
			f.phase, f.aux = 8, 1
		default:
			return reject
		}
		return consumed
	case 7:
		if !isDigit(b) {
			return reject
		}
		f.phase, f.aux = 8, 1
		return consumed
	case 8:
		if isDigit(b) && f.aux < maxExpDigits {
			f.aux++
			return consumed
		}
		return ended
	}
	return reject
}

// Shared nodes for the parts of kAny values.
var (
	anyValue    = finish(&node{kind: kAny, types: tAll})
	anyString   = finish(&node{kind: kString, maxLen: -1})
	anyArray    = finish(&node{kind: kArray, items: anyValue, maxItems: -1})
	anyLiterals = finish(&node{kind: kLiterals, lits: []string{"true", "false", "null"}})
)

// MinRemaining is the length in bytes of the shortest text that completes
// the value from this state (0 when it may end now).
func (s *State) MinRemaining() int {
	best := s.r.minRemaining()
	for i := range s.more {
		best = min(best, s.more[i].minRemaining())
	}
	return best
}

func (s *run) minRemaining() int {
	if s.isDone() {
		return 0
	}
	total := 0
	for d := s.depth - 1; d >= 0; d-- {
		f := &s.stack[d]
		total += frameRest(f)
	}
	return total
}

// frameRest is what frame f still needs, besides its open child's own
// rest when it is not the top.
func frameRest(f *frame) int {
	n := f.n
	switch f.k {
	case kAny:
		return 1
	case kObjectAny:
		switch f.phase {
		case 0:
			return 2
		case 1, 5:
			return 1
		case 2:
			return 2 + 1 + 1 + 1 // "":0}
		case 3:
			return 1 + 1 + 1 // :0} after the key
		case 4:
			return 1 + 1 + 1
		case 6:
			return 1 // }
		}
	case kObject:
		switch f.phase {
		case 0:
			return n.minBytes
		case 1:
			return n.restMin[f.i] - int(f.aux)
		case 2: // value i open (child)
			return n.restMin[f.i+1]
		}
	case kArray:
		switch f.phase {
		case 0:
			return n.minBytes
		case 1: // ']' or items
			need := n.minItems
			if need == 0 {
				return 1
			}
			return need*n.items.minBytes + need - 1 + 1
		case 3: // an item must follow the ','
			need := max(n.minItems-int(f.i), 1)
			return need*n.items.minBytes + need - 1 + 1
		case 2:
			need := max(n.minItems-int(f.i), 0)
			return need*(n.items.minBytes+1) + 1
		case 4: // item i open: what follows it
			need := max(n.minItems-int(f.i)-1, 0)
			return need*(n.items.minBytes+1) + 1
		}
	case kString:
		switch f.phase {
		case 0:
			return n.minBytes
		case 1:
			return int(f.aux&0xF) + max(n.minLen-int(f.i), 0) + 1
		case 2:
			return 1 + max(n.minLen-int(f.i), 0) + 1
		default:
			return 7 - int(f.phase) + max(n.minLen-int(f.i), 0) + 1
		}
	case kNumber, kInteger:
		switch f.phase {
		case 0, 1, 4, 6, 7:
			return 1
		}
		return 0
	case kAnyOf, kNever: // not yet forked; never
		return n.minBytes
	case kAlts:
		switch f.phase {
		case 1: // the value is open
			return len(n.suffixes[f.i])
		case 2:
			return len(n.suffixes[f.i]) - int(f.aux)
		}
		best := -1
		for j, l := range n.lits {
			if f.i&(1<<j) != 0 {
				if r := len(l) - int(f.aux) + n.alts[j].minBytes + len(n.suffixes[j]); best < 0 || r < best {
					best = r
				}
			}
		}
		return max(best, 0)
	case kLiterals:
		best := -1
		for j, l := range n.lits {
			if f.i&(1<<j) != 0 {
				if r := len(l) - int(f.aux); best < 0 || r < best {
					best = r
				}
			}
		}
		return max(best, 0)
	}
	return 0
}
