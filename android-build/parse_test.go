package androidbuild

import (
	"fmt"
	"regexp"
	"strings"
)

// The small parsers of the files of this directory: Soong's Blueprint (Android.bp),
// init's rc language, SELinux file_contexts and type enforcement (.te) files. Each
// knows only as much of its language as the files here use, and refuses the rest.

// bpValue is a Blueprint value: string, bool, int64, []bpValue or *bpMap.
type bpValue any

// bpMap is a Blueprint property map, in file order.
type bpMap struct {
	keys []string
	vals map[string]bpValue
}

func (m *bpMap) get(path ...string) (bpValue, bool) {
	var v bpValue = m
	for _, k := range path {
		mm, ok := v.(*bpMap)
		if !ok {
			return nil, false
		}
		if v, ok = mm.vals[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func (m *bpMap) str(path ...string) string {
	v, _ := m.get(path...)
	s, _ := v.(string)
	return s
}

func (m *bpMap) strs(path ...string) []string {
	v, _ := m.get(path...)
	l, _ := v.([]bpValue)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// bpModule is one module definition: `type { properties }`.
type bpModule struct {
	typ   string
	line  int
	props *bpMap
}

type bpToken struct {
	text string // punctuation, an identifier, or a string with its quotes
	line int
}

// bpBalance checks that braces, brackets and parentheses pair up outside strings
// and comments, and names the line of the first that does not.
func bpBalance(src string) error {
	type open struct {
		c    byte
		line int
	}
	var stack []open
	line := 1
	pairs := map[byte]byte{'}': '{', ']': '[', ')': '('}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\n':
			line++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			line++
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return fmt.Errorf("line %d: comment never closed", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 3
		case c == '"':
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				if src[j] == '\\' {
					j++
				}
				if j < len(src) && src[j] == '\n' {
					return fmt.Errorf("line %d: string never closed", line)
				}
			}
			if j >= len(src) {
				return fmt.Errorf("line %d: string never closed", line)
			}
			i = j
		case c == '{' || c == '[' || c == '(':
			stack = append(stack, open{c, line})
		case c == '}' || c == ']' || c == ')':
			if len(stack) == 0 || stack[len(stack)-1].c != pairs[c] {
				return fmt.Errorf("line %d: %q closes nothing open", line, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		o := stack[len(stack)-1]
		return fmt.Errorf("line %d: %q is never closed", o.line, o.c)
	}
	return nil
}

func bpTokens(src string) ([]bpToken, error) {
	var toks []bpToken
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: comment never closed", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) || src[j] != '"' {
				return nil, fmt.Errorf("line %d: string never closed", line)
			}
			toks = append(toks, bpToken{src[i : j+1], line})
			i = j + 1
		case strings.ContainsRune("{}[]:,=+", rune(c)):
			toks = append(toks, bpToken{string(c), line})
			i++
		case c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(src) && (src[j] == '_' || src[j] == '-' || src[j] >= '0' && src[j] <= '9' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z') {
				j++
			}
			toks = append(toks, bpToken{src[i:j], line})
			i = j
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", line, c)
		}
	}
	return toks, nil
}

// parseBlueprint parses the module definitions of an Android.bp. Variables and
// concatenation are not used here and are refused.
func parseBlueprint(src string) ([]bpModule, error) {
	if err := bpBalance(src); err != nil {
		return nil, err
	}
	toks, err := bpTokens(src)
	if err != nil {
		return nil, err
	}
	p := &bpParser{toks: toks}
	var mods []bpModule
	for p.i < len(p.toks) {
		t := p.next()
		if !isIdent(t.text) {
			return nil, fmt.Errorf("line %d: want a module type, got %q", t.line, t.text)
		}
		if n := p.peek(); n.text != "{" {
			return nil, fmt.Errorf("line %d: want { after %s, got %q (variables are not used here)", n.line, t.text, n.text)
		}
		p.next()
		props, err := p.props("}")
		if err != nil {
			return nil, err
		}
		mods = append(mods, bpModule{typ: t.text, line: t.line, props: props})
	}
	return mods, nil
}

type bpParser struct {
	toks []bpToken
	i    int
}

func (p *bpParser) peek() bpToken {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return bpToken{text: "<end>", line: -1}
}

func (p *bpParser) next() bpToken { t := p.peek(); p.i++; return t }

func isIdent(s string) bool { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(s) }

// props parses `name: value,` pairs up to close.
func (p *bpParser) props(close string) (*bpMap, error) {
	m := &bpMap{vals: map[string]bpValue{}}
	for {
		t := p.next()
		if t.text == close {
			return m, nil
		}
		if !isIdent(t.text) {
			return nil, fmt.Errorf("line %d: want a property name, got %q", t.line, t.text)
		}
		if c := p.next(); c.text != ":" {
			return nil, fmt.Errorf("line %d: want : after %s, got %q", c.line, t.text, c.text)
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if _, dup := m.vals[t.text]; dup {
			return nil, fmt.Errorf("line %d: property %s twice", t.line, t.text)
		}
		m.keys = append(m.keys, t.text)
		m.vals[t.text] = v
		switch n := p.peek(); n.text {
		case ",":
			p.next()
		case close:
		default:
			return nil, fmt.Errorf("line %d: want , or %s after %s, got %q", n.line, close, t.text, n.text)
		}
	}
}

func (p *bpParser) value() (bpValue, error) {
	t := p.next()
	switch {
	case strings.HasPrefix(t.text, `"`):
		return strings.Trim(t.text, `"`), nil
	case t.text == "true" || t.text == "false":
		return t.text == "true", nil
	case t.text == "{":
		return p.props("}")
	case t.text == "[":
		var l []bpValue
		for p.peek().text != "]" {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if p.peek().text == "," {
				p.next()
			} else if p.peek().text != "]" {
				return nil, fmt.Errorf("line %d: want , or ] in a list, got %q", p.peek().line, p.peek().text)
			}
		}
		p.next()
		return l, nil
	}
	return nil, fmt.Errorf("line %d: want a value, got %q (variables are not used here)", t.line, t.text)
}

// rcSection is an `on TRIGGER` or `service NAME PATH ARGS` section of an init rc file.
type rcSection struct {
	kind  string   // "on" or "service"
	args  []string // the trigger, or name, path and arguments
	lines [][]string
}

// parseRC splits an init rc file into sections; comments and blank lines go.
func parseRC(src string) ([]rcSection, error) {
	var out []rcSection
	for n, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "on", "service":
			if len(f) < 2 || f[0] == "service" && len(f) < 3 {
				return nil, fmt.Errorf("line %d: %q is incomplete", n+1, line)
			}
			out = append(out, rcSection{kind: f[0], args: f[1:]})
		case "import":
			return nil, fmt.Errorf("line %d: import is not expected here", n+1)
		default:
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: %q outside any section", n+1, line)
			}
			s := &out[len(out)-1]
			s.lines = append(s.lines, f)
		}
	}
	return out, nil
}

// fcEntry is one line of file_contexts.
type fcEntry struct {
	regex   string
	re      *regexp.Regexp
	context string
	typ     string
}

// parseFileContexts reads file_contexts; each regular expression is anchored as
// SELinux anchors it. A file type field (-- -d …) is refused: none is used here.
func parseFileContexts(src string) ([]fcEntry, error) {
	var out []fcEntry
	ctxRe := regexp.MustCompile(`^u:object_r:([a-z0-9_]+):s0$`)
	for n, raw := range strings.Split(src, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want a path regex and a context, got %q", n+1, line)
		}
		re, err := regexp.Compile(`^(?:` + f[0] + `)$`)
		if err != nil {
			return nil, fmt.Errorf("line %d: regex %q: %w", n+1, f[0], err)
		}
		m := ctxRe.FindStringSubmatch(f[1])
		if m == nil {
			return nil, fmt.Errorf("line %d: context %q, want u:object_r:TYPE:s0", n+1, f[1])
		}
		out = append(out, fcEntry{regex: f[0], re: re, context: f[1], typ: m[1]})
	}
	return out, nil
}

// label returns the type file_contexts gives path: the last matching line, as the
// entries here are written from general to specific.
func label(fc []fcEntry, path string) string {
	typ := ""
	for _, e := range fc {
		if e.re.MatchString(path) {
			typ = e.typ
		}
	}
	return typ
}

// teStmt is one statement of a .te file: a macro call `name(args)` or a policy
// statement ending in ';', split into words.
type teStmt struct {
	line  int
	macro string   // the macro's name, or ""
	args  []string // the macro's arguments
	words []string // a statement's words; punctuation {}:,; are words of their own
	text  string
}

// parseTE reads a .te file: comments go, macro calls and statements are split.
func parseTE(src string) ([]teStmt, error) {
	var b strings.Builder
	for _, l := range strings.Split(src, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	s := b.String()
	var out []teStmt
	line := 1
	macroRe := regexp.MustCompile(`^([a-z_][a-z0-9_]*)\(`)
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case macroRe.MatchString(s[i:]):
			m := macroRe.FindStringSubmatch(s[i:])
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				return nil, fmt.Errorf("line %d: %s( is never closed", line, m[1])
			}
			body := s[i+len(m[0]) : i+end]
			var args []string
			for _, a := range strings.Split(body, ",") {
				args = append(args, strings.TrimSpace(a))
			}
			out = append(out, teStmt{line: line, macro: m[1], args: args, text: s[i : i+end+1]})
			line += strings.Count(s[i:i+end], "\n")
			i += end + 1
			if i < len(s) && s[i] == ';' { // a stray ';' after a macro is harmless
				i++
			}
		default:
			end := strings.IndexByte(s[i:], ';')
			if end < 0 {
				return nil, fmt.Errorf("line %d: statement %q does not end with ;", line, strings.TrimSpace(s[i:]))
			}
			text := s[i : i+end+1]
			r := strings.NewReplacer("{", " { ", "}", " } ", ":", " : ", ",", " , ", ";", " ; ")
			out = append(out, teStmt{line: line, words: strings.Fields(r.Replace(text)), text: strings.Join(strings.Fields(text), " ")})
			line += strings.Count(text, "\n")
			i += end + 1
		}
	}
	return out, nil
}
