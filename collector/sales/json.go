package sales

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// jsonFile walks a JSON import file token by token, keeping track of lines.
type jsonFile struct {
	c         *collector
	b         []byte
	dec       *json.Decoder
	off, line int // lineAt cache: byte off is on line
}

func (c *collector) parseJSON(b []byte) error {
	p := &jsonFile{c: c, b: b, dec: json.NewDecoder(bytes.NewReader(b)), line: 1}
	p.dec.UseNumber()
	tok, err := p.token()
	if err == nil && tok == json.Delim('{') {
		err = p.wrapper()
	} else if err == nil {
		err = p.array()
	}
	if err != nil {
		return err
	}
	if rest := bytes.TrimLeft(b[p.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return c.fail(p.lineAt(len(b)-len(rest)), "", "", "data after the JSON value")
	}
	return nil
}

// wrapper reads the rest of an object {"sales":[...]}.
func (p *jsonFile) wrapper() error {
	for i := 0; ; i++ {
		tok, err := p.token()
		if err != nil {
			return err
		}
		line := p.lineAt(int(p.dec.InputOffset()))
		switch {
		case tok == json.Delim('}') && i == 0:
			return p.c.fail(0, "", "", `no "sales" array`)
		case tok == json.Delim('}'):
			return nil
		case tok != "sales" || i > 0:
			return p.c.fail(line, "", fmt.Sprint(tok), `unknown or repeated key; want {"sales":[...]}`)
		}
		if tok, err = p.token(); err != nil {
			return err
		} else if tok != json.Delim('[') {
			return p.c.fail(line, "", "", `"sales" is not an array`)
		}
		if err := p.array(); err != nil {
			return err
		}
	}
}

// array reads the elements and the closing ']' of an array of sales.
func (p *jsonFile) array() error {
	for {
		start := int(p.dec.InputOffset())
		for start < len(p.b) && bytes.IndexByte([]byte(" \t\r\n,"), p.b[start]) >= 0 {
			start++
		}
		line := p.lineAt(start)
		tok, err := p.token()
		if err != nil || tok == json.Delim(']') {
			return err
		}
		if tok != json.Delim('{') {
			return p.c.fail(line, "", "", "not a JSON object")
		}
		if err := p.object(line); err != nil {
			return err
		}
	}
}

// object reads the keys and the closing '}' of the sale that starts on line.
func (p *jsonFile) object(line int) error {
	var f [4]string
	var have [4]bool
	for {
		tok, err := p.token()
		if err != nil {
			return err
		} else if tok == json.Delim('}') {
			break
		}
		key, _ := tok.(string)
		k := slices.Index(columns(), key)
		if k < 0 || have[k] {
			return p.c.fail(line, "", key, "unknown or repeated key")
		}
		if tok, err = p.token(); err != nil {
			return err
		}
		v, ok := tok.(string)
		if tok == nil {
			return p.c.fail(line, key, "null", "not a string")
		} else if !ok {
			return p.c.fail(line, key, fmt.Sprint(tok), "not a string")
		}
		f[k], have[k] = v, true
	}
	for k, ok := range have {
		if !ok {
			return p.c.fail(line, columns()[k], "", "missing")
		}
	}
	return p.c.add(line, f)
}

// token returns the next token, or a *RowError on the line of a syntax error.
func (p *jsonFile) token() (json.Token, error) {
	tok, err := p.dec.Token()
	var se *json.SyntaxError
	switch {
	case err == nil:
		return tok, nil
	case errors.As(err, &se):
		return nil, p.c.fail(p.lineAt(int(se.Offset)-1), "", "", "JSON: "+se.Error())
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		end := len(bytes.TrimRight(p.b, " \t\r\n"))
		return nil, p.c.fail(p.lineAt(end), "", "", "JSON: unexpected end of file")
	}
	return nil, p.c.fail(p.lineAt(int(p.dec.InputOffset())), "", "", "JSON: "+err.Error())
}

// lineAt returns the 1-based line of byte off of the file.
func (p *jsonFile) lineAt(off int) int {
	off = max(0, min(off, len(p.b)))
	if off < p.off {
		p.off, p.line = 0, 1
	}
	p.line += bytes.Count(p.b[p.off:off], []byte{'\n'})
	p.off = off
	return p.line
}
