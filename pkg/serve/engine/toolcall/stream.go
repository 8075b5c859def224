package toolcall

import (
	"bytes"
	"encoding/json"
)

// Event is one piece of a parsed answer, in order: content text, the start
// of a call (Name set), or a fragment of a call's arguments.
type Event struct {
	Text  string // content
	Call  int    // the call's index, for Name and Args
	Name  string // a call to Name starts
	Args  string // a fragment of call Call's arguments
	start bool
}

// IsStart reports whether e opens a call.
func (e Event) IsStart() bool { return e.start }

// Parser reads an answer as it is generated and says as early as the
// format allows what is content and what is a call: a call is committed
// once its name is a known function and its arguments open with "{";
// from then on the arguments stream, compacted (whitespace outside strings
// dropped), fragment by fragment. Feeding an answer in any pieces gives
// the same events, joined, as feeding it whole.
//
// A committed call stays a call even if the model then writes broken JSON
// or is cut off: as with OpenAI, arguments are what the model wrote.
// Whitespace that touches a call is not content, except that a run before
// a call is kept when content follows the call.
type Parser struct {
	f     Format
	known map[string]bool
	out   []Event

	st    pstate
	held  []byte // candidate text not yet known to be a call or content
	obj   int    // held[obj:] is the call object (stCand, stWhole)
	next  bool   // the candidate follows a call (closing tag, next call)
	calls int

	// Whitespace and content bookkeeping: ws is the pending run.
	ws       []byte
	skipWS   bool // the current run began right after a call
	emitted  bool // some content has been emitted
	callSeen bool

	// JSON scanning (arguments, a whole object, a call's tail).
	depth    int
	inStr    bool
	esc      bool
	gap      bool // whitespace skipped since the last argument byte
	lastByte byte
}

type pstate uint8

const (
	stStart pstate = iota // nothing but whitespace yet
	stText                // content; Hermes looks for tags, others never call
	stCand                // held text may open a call (tag, brackets, call head)
	stWhole               // buffering a whole call object that could not stream
	stArgs                // streaming arguments
	stTail                // after the arguments, up to the call object's "}"
	stAfter               // after a call: what may follow it in the format
)

// maxHead bounds how much text is held while a call head is undecided.
const maxHead = 1024

// NewParser starts a parser for one answer; known are the callable names.
func (f Format) NewParser(known map[string]bool) *Parser {
	return &Parser{f: f, known: known}
}

// Feed takes the next piece of the answer and returns the events it
// settles (nil when everything is held back).
func (p *Parser) Feed(s string) []Event {
	for i := 0; i < len(s); i++ {
		p.byte(s[i])
	}
	return p.take()
}

// End finishes the answer: held text that did not become a call is
// content; a call cut off keeps the arguments it has.
func (p *Parser) End() []Event {
	for p.st == stCand || p.st == stWhole {
		p.rollback()
	}
	if !p.callSeen {
		p.text(p.ws)
	}
	p.ws = nil
	return p.take()
}

func (p *Parser) take() []Event {
	out := p.out
	p.out = nil
	return out
}

func isWS(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func (p *Parser) text(b []byte) {
	if len(b) == 0 {
		return
	}
	if n := len(p.out); n > 0 && p.out[n-1].Name == "" && p.out[n-1].Args == "" && !p.out[n-1].start {
		p.out[n-1].Text += string(b)
		return
	}
	p.out = append(p.out, Event{Text: string(b)})
}

func (p *Parser) args(b []byte) {
	if len(b) == 0 {
		return
	}
	c := p.calls - 1
	if n := len(p.out); n > 0 && !p.out[n-1].start && p.out[n-1].Args != "" && p.out[n-1].Call == c {
		p.out[n-1].Args += string(b)
		return
	}
	p.out = append(p.out, Event{Call: c, Args: string(b)})
}

// content emits one content byte with the whitespace run before it.
func (p *Parser) content(b byte) {
	if p.emitted || !p.callSeen {
		p.text(p.ws)
	}
	p.ws, p.skipWS = p.ws[:0], false
	p.text([]byte{b})
	p.emitted = true
}

func (p *Parser) space(b byte) {
	if !p.skipWS {
		p.ws = append(p.ws, b)
	}
}

// opens reports whether b may start a call where the parser stands.
func (p *Parser) opens(b byte) bool {
	switch p.st {
	case stStart:
		switch p.f {
		case Hermes:
			return b == '<'
		case Mistral:
			return b == '['
		}
		return b == '{' || b == '<'
	case stText:
		return p.f == Hermes && b == '<'
	}
	return false
}

func (p *Parser) byte(b byte) {
	switch p.st {
	case stStart, stText:
		switch {
		case isWS(b):
			p.space(b)
		case p.opens(b):
			p.held, p.st, p.next = append(p.held[:0], b), stCand, false
		default:
			p.content(b)
			p.st = stText
		}
	case stCand:
		p.held = append(p.held, b)
		p.candidate()
	case stWhole:
		p.held = append(p.held, b)
		if p.scan(b) {
			p.whole()
		}
	case stArgs:
		p.argByte(b)
	case stTail:
		if p.depth == 1 && !p.inStr && isWS(b) {
			return
		}
		if p.scan(b) {
			p.endCall()
		}
	case stAfter:
		p.after(b)
	}
}

// scan follows JSON strings and nesting; it reports when depth returns
// to 0.
func (p *Parser) scan(b byte) bool {
	switch {
	case p.inStr:
		switch {
		case p.esc:
			p.esc = false
		case b == '\\':
			p.esc = true
		case b == '"':
			p.inStr = false
		}
	case b == '"':
		p.inStr = true
	case b == '{' || b == '[':
		p.depth++
	case b == '}' || b == ']':
		p.depth--
		return p.depth == 0
	}
	return false
}

func scalarByte(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '.' || b == '-' || b == '+'
}

// argByte streams one byte of the arguments, compacted.
func (p *Parser) argByte(b byte) {
	if !p.inStr && isWS(b) {
		p.gap = true
		return
	}
	// A space that separated two scalars is kept, so compacting never
	// turns broken JSON ("1 2") into different valid JSON ("12").
	if p.gap && !p.inStr && scalarByte(b) && scalarByte(p.lastByte) {
		p.args([]byte{' '})
	}
	p.gap = false
	p.lastByte = b
	p.args([]byte{b})
	if p.scan(b) {
		p.st, p.depth = stTail, 1
	}
}

// rollback makes the held text content and rereads it in text mode, so a
// later candidate inside it is still found.
func (p *Parser) rollback() {
	held := append([]byte(nil), p.held...)
	p.held = p.held[:0]
	p.st = stText
	p.depth, p.inStr, p.esc = 0, false, false
	if len(held) == 0 {
		return
	}
	p.content(held[0])
	for _, b := range held[1:] {
		p.byte(b)
	}
}

// candidate re-reads the held text after each byte.
func (p *Parser) candidate() {
	r, name, argAt := p.head()
	switch r {
	case hMore:
		if len(p.held) > maxHead {
			p.rollback()
		}
	case hFail:
		p.rollback()
	case hWhole:
		p.st, p.depth, p.inStr, p.esc = stWhole, 0, false, false
		for _, b := range p.held[p.obj:] {
			if p.scan(b) {
				p.whole()
				return
			}
		}
	case hClose:
		p.held = p.held[:0]
		p.st, p.skipWS = stText, true
	case hCall:
		p.commit(name)
		rest := append([]byte(nil), p.held[argAt:]...)
		p.held = p.held[:0]
		p.st, p.depth, p.inStr, p.esc, p.gap, p.lastByte = stArgs, 0, false, false, false, 0
		for _, b := range rest {
			p.byte(b)
		}
	}
}

func (p *Parser) commit(name string) {
	p.callSeen = true
	p.out = append(p.out, Event{Call: p.calls, Name: name, start: true})
	p.calls++
}

// whole settles a buffered call object that did not stream.
func (p *Parser) whole() {
	c, ok := parseCall(p.held[p.obj:], p.known)
	if !ok {
		p.rollback()
		return
	}
	p.commit(c.Name)
	p.args([]byte(c.Arguments))
	p.held = p.held[:0]
	p.endCall()
}

func (p *Parser) endCall() {
	p.st, p.depth, p.inStr, p.esc = stAfter, 0, false, false
	p.skipWS = true
}

// after reads what follows a call: Hermes' closing tag, Mistral's next
// call or the list's end; anything else is content.
func (p *Parser) after(b byte) {
	if isWS(b) {
		return
	}
	switch {
	case p.f == Hermes && b == '<', p.f == Mistral && (b == ',' || b == ']'):
		p.held, p.st, p.next = append(p.held[:0], b), stCand, true
		p.candidate()
	default:
		p.st = stText
		p.content(b)
	}
}

type headResult uint8

const (
	hMore  headResult = iota // undecided
	hFail                    // not a call: content
	hCall                    // a call to a known name, arguments open with "{"
	hWhole                   // maybe a call, but only readable whole
	hClose                   // a closing tag or bracket, consumed
)

// head matches the held text against the format's call opening.
func (p *Parser) head() (headResult, string, int) {
	h := p.held
	lit := func(s string) (bool, bool) { // matched, failed
		n := min(len(h), len(s))
		if string(h[:n]) != s[:n] {
			return false, true
		}
		if len(h) < len(s) {
			return false, false
		}
		h = h[len(s):]
		return true, false
	}
	skip := func() {
		for len(h) > 0 && isWS(h[0]) {
			h = h[1:]
		}
	}
	switch {
	case p.next && p.f == Hermes && len(p.held) > 1 && p.held[1] == '/':
		if ok, fail := lit("</tool_call>"); fail {
			return hFail, "", 0
		} else if !ok {
			return hMore, "", 0
		}
		return hClose, "", 0
	case p.f == Hermes:
		if ok, fail := lit("<tool_call>"); fail {
			return hFail, "", 0
		} else if !ok {
			return hMore, "", 0
		}
	case p.f == Mistral && p.next:
		if h[0] == ']' {
			return hClose, "", 0
		}
		h = h[1:] // the comma
	case p.f == Mistral:
		if len(h) > 1 && h[1] == 'T' || len(h) == 1 {
			if len(h) == 1 {
				return hMore, "", 0
			}
			if ok, fail := lit("[TOOL_CALLS]"); fail {
				return hFail, "", 0
			} else if !ok {
				return hMore, "", 0
			}
			skip()
			if len(h) == 0 {
				return hMore, "", 0
			}
			if h[0] != '[' {
				return hFail, "", 0
			}
		}
		h = h[1:]
	default: // Llama3, Generic
		if h[0] == '<' {
			if ok, fail := lit("<|python_tag|>"); fail {
				return hFail, "", 0
			} else if !ok {
				return hMore, "", 0
			}
		}
	}
	skip()
	p.obj = len(p.held) - len(h)
	return callHead(h, p.known, p.obj)
}

// callHead matches {"name": "<known>", "arguments"|"parameters": {
// (whitespace allowed between tokens); off is h's offset in the held text.
func callHead(h []byte, known map[string]bool, off int) (headResult, string, int) {
	start := len(h)
	pos := func() int { return off + start - len(h) }
	skip := func() {
		for len(h) > 0 && isWS(h[0]) {
			h = h[1:]
		}
	}
	// str reads a JSON string; ok false and more true when it is unfinished.
	str := func() (s string, ok, more bool) {
		if len(h) == 0 {
			return "", false, true
		}
		if h[0] != '"' {
			return "", false, false
		}
		for i, esc := 1, false; i < len(h); i++ {
			switch {
			case esc:
				esc = false
			case h[i] == '\\':
				esc = true
			case h[i] == '"':
				if json.Unmarshal(h[:i+1], &s) != nil {
					return "", false, false
				}
				h = h[i+1:]
				return s, true, false
			}
		}
		return "", false, true
	}
	punct := func(c byte) (ok, more bool) {
		skip()
		if len(h) == 0 {
			return false, true
		}
		if h[0] != c {
			return false, false
		}
		h = h[1:]
		skip()
		return true, false
	}
	if len(h) == 0 {
		return hMore, "", 0
	}
	if h[0] != '{' {
		return hFail, "", 0
	}
	h = h[1:]
	skip()
	key, ok, more := str()
	switch {
	case more:
		return hMore, "", 0
	case !ok:
		return hFail, "", 0
	case key != "name":
		return hWhole, "", 0
	}
	if ok, more := punct(':'); !ok {
		return pick(more, hFail), "", 0
	}
	name, ok, more := str()
	switch {
	case more:
		return hMore, "", 0
	case !ok || !known[name]:
		return hFail, "", 0
	}
	if ok, more := punct(','); !ok {
		if more {
			return hMore, "", 0
		}
		return hWhole, "", 0 // e.g. {"name":"f"} without arguments
	}
	key, ok, more = str()
	switch {
	case more:
		return hMore, "", 0
	case !ok:
		return hFail, "", 0
	case key != "arguments" && key != "parameters":
		return hWhole, "", 0
	}
	if ok, more := punct(':'); !ok {
		return pick(more, hFail), "", 0
	}
	if len(h) == 0 {
		return hMore, "", 0
	}
	if h[0] != '{' {
		return hWhole, "", 0 // a string, null, or not a call: read whole
	}
	return hCall, name, pos()
}

func pick(more bool, r headResult) headResult {
	if more {
		return hMore
	}
	return r
}

// Parse splits a finished answer into its text and its calls to the
// functions named in known, exactly as a Parser fed the answer would.
func (f Format) Parse(answer string, known map[string]bool) (content string, calls []Call) {
	p := f.NewParser(known)
	var text bytes.Buffer
	for _, e := range append(p.Feed(answer), p.End()...) {
		switch {
		case e.start:
			calls = append(calls, Call{Name: e.Name})
		case e.Args != "":
			calls[e.Call].Arguments += e.Args
		default:
			text.WriteString(e.Text)
		}
	}
	return text.String(), calls
}
