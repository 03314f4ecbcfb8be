// Package http1 is the HTTP/1.1 client of the sync protocol (RFC 9112), written for the
// one request amosd makes: a POST with a Content-Length body, answered with a status, a few headers and a
// body framed by Content-Length, chunked transfer coding or the end of the connection.
// It replaces net/http, which with its MIME, IDNA, gzip and proxy code made up a
// seventh of the binary (README.md's budget table). What it keeps of net/http's behaviour: one
// keep-alive connection reused by the requests of an Upload, TLS session resumption
// across connections (by the tls.Config), every step bounded by the request's deadline
// and ended at once by its cancellation, response headers bounded, no redirect
// followed, a stale keep-alive connection retried once on a fresh one.
package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of an answer's head.
const (
	// maxHeaderBytes bounds the status line and headers of an answer (1xx included).
	maxHeaderBytes = 16 << 10
	// lineBytes is the reader's buffer: the longest header or chunk-size line.
	lineBytes = 4 << 10
)

// ErrMalformed is the cause of every answer that is not HTTP/1.x as RFC 9112 frames it.
var ErrMalformed = errors.New("malformed HTTP answer")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// aLongTimeAgo is a deadline in the past: it makes every pending I/O fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is a connection to the server: TLS (or TCP for http://) with a reader.
type conn struct {
	net.Conn
	br   *bufio.Reader
	stop func() bool // ends the watch of the current request's context
}

// watch bounds the connection's I/O by ctx: its deadline, and its cancellation, which
// interrupts a read or write in progress.
func (hc *conn) watch(ctx context.Context) {
	dl, _ := ctx.Deadline() // zero: none
	hc.SetDeadline(dl)
	hc.stop = context.AfterFunc(ctx, func() { hc.SetDeadline(aLongTimeAgo) })
}

// unwatch ends the watch; false means the context ended meanwhile and the connection
// must not be reused.
func (hc *conn) unwatch() bool {
	if hc.stop == nil {
		return true
	}
	ok := hc.stop()
	hc.stop = nil
	if ok {
		hc.SetDeadline(time.Time{})
	}
	return ok
}

// Answer is the head of a response and its body, framed.
type Answer struct {
	Status     int
	Date       string // the Date header, "" if absent
	RetryAfter string // the first Retry-After header, "" if absent
	// Encoding is the Content-Encoding, its headers joined by ", "; "" if absent.
	// The client asks for none and decodes none: its caller refuses any but identity.
	Encoding  string
	Length    int64 // Content-Length, -1 if the body is chunked or ends with the connection
	KeepAlive bool  // the connection may carry the next request once the body is read
	Body      Body

	conn *conn // the connection it came on, released by Client.Release
}

// Body is the framed body of an answer; Complete says whether it was read to its end.
type Body interface {
	io.Reader
	Complete() bool
}

// Client sends requests on one kept-alive connection at a time. Its methods are safe
// for concurrent use.
type Client struct {
	dial func(ctx context.Context) (net.Conn, error)
	mu   sync.Mutex
	idle *conn // the connection kept alive for the next request, if any
}

// New returns a client whose connections dial opens (resolver, TCP, TLS handshake),
// within the request's context.
func New(dial func(ctx context.Context) (net.Conn, error)) *Client {
	return &Client{dial: dial}
}

// open dials a new connection.
func (c *Client) open(ctx context.Context) (*conn, error) {
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, br: bufio.NewReaderSize(nc, lineBytes)}, nil
}

// takeIdle returns the connection kept from the previous request, or nil.
func (c *Client) takeIdle() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := c.idle
	c.idle = nil
	return hc
}

// Release keeps a's connection for the next request if a allows it and its body was
// read to the end, and closes it otherwise. Call it once the body is read (or not
// wanted).
func (c *Client) Release(a *Answer) {
	hc := a.conn
	if !hc.unwatch() || !a.KeepAlive || !a.Body.Complete() {
		hc.Close()
		return
	}
	c.mu.Lock()
	old := c.idle
	c.idle = hc
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// CloseIdle closes the connection kept alive from an earlier request.
func (c *Client) CloseIdle() {
	if hc := c.takeIdle(); hc != nil {
		hc.Close()
	}
}

// RoundTrip sends req (a whole request, head and body) and reads the head of the
// answer, on the idle connection if there is one, else on a new one. A kept connection
// that the server closed meanwhile (the write fails, or the answer ends before its first
// byte) is replaced by a new one once. The caller reads the body and then calls Release.
// Errors are those of the resolver, TLS and the network, or ctx's error when ctx ended
// the request.
func (c *Client) RoundTrip(ctx context.Context, req []byte) (*Answer, error) {
	hc := c.takeIdle()
	for {
		reused := hc != nil
		if !reused {
			var err error
			if hc, err = c.open(ctx); err != nil {
				return nil, ctxErr(ctx, err)
			}
		}
		hc.watch(ctx)
		a, started, err := exchange(hc, req)
		if err == nil {
			a.conn = hc
			return a, nil
		}
		hc.unwatch()
		hc.Close()
		if !reused || started || ctx.Err() != nil {
			return nil, ctxErr(ctx, err)
		}
		hc = nil // a stale keep-alive connection: once more on a new one
	}
}

// ctxErr returns ctx's error if ctx has ended (the I/O error is then only its echo),
// else err.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// exchange writes req and reads the answer's head. started reports whether any byte of
// the answer arrived.
func exchange(hc *conn, req []byte) (a *Answer, started bool, err error) {
	if _, err := hc.Write(req); err != nil {
		return nil, false, err
	}
	if _, err := hc.br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the server closed the connection without an answer
		}
		return nil, false, err
	}
	a, err = ReadAnswer(hc.br)
	return a, true, err
}

// AppendPost appends the POST of body to path on host to dst: the head net/http sent,
// byte for byte.
func AppendPost(dst []byte, host, path, userAgent, contentType string, body []byte) []byte {
	dst = append(dst, "POST "...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUser-Agent: "...)
	dst = append(dst, userAgent...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, contentType...)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

// ReadAnswer reads the status line and headers of an answer, skipping 1xx interim
// answers, and frames its body.
func ReadAnswer(br *bufio.Reader) (*Answer, error) {
	left := maxHeaderBytes
	for {
		a, err := readHead(br, &left)
		if err != nil {
			return nil, err
		}
		if a != nil {
			return a, nil
		}
	}
}

// readHead reads one head; it returns nil, nil for an interim (1xx) answer.
func readHead(br *bufio.Reader, left *int) (*Answer, error) {
	line, err := readLine(br, left)
	if err != nil {
		return nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return nil, malformed("status line %q", truncate(line, 64))
	}
	code, _, _ := strings.Cut(rest, " ")
	if len(code) != 3 || !isDigits(code) || code[0] == '0' {
		return nil, malformed("status line %q", truncate(line, 64))
	}
	status, _ := strconv.Atoi(code)
	a := &Answer{Status: status, Length: -1, KeepAlive: proto == "HTTP/1.1"}
	chunked := false
	for {
		line, err := readLine(br, left)
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, malformed("header line %q", truncate(line, 64)) // obs-fold included
		}
		value = strings.Trim(value, " \t")
		switch {
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || !isDigits(value) || a.Length >= 0 && n != a.Length {
				return nil, malformed("Content-Length %q", truncate(value, 32))
			}
			a.Length = n
		case strings.EqualFold(name, "Transfer-Encoding"):
			if !strings.EqualFold(value, "chunked") || chunked {
				return nil, malformed("Transfer-Encoding %q", truncate(value, 32))
			}
			chunked = true
		case strings.EqualFold(name, "Connection"):
			for _, tok := range strings.Split(value, ",") {
				if strings.EqualFold(strings.Trim(tok, " \t"), "close") {
					a.KeepAlive = false
				}
			}
		case strings.EqualFold(name, "Date"):
			if a.Date == "" {
				a.Date = value
			}
		case strings.EqualFold(name, "Content-Encoding"):
			if a.Encoding != "" {
				a.Encoding += ", "
			}
			a.Encoding += value
		case strings.EqualFold(name, "Retry-After"):
			if a.RetryAfter == "" {
				a.RetryAfter = value
			}
		}
	}
	switch {
	case chunked && proto == "HTTP/1.0":
		// HTTP/1.0 has no transfer codings: the framing is faulty (RFC 9112 §6.1), and
		// net/http would read the body to the end of the connection instead.
		return nil, malformed("Transfer-Encoding in an HTTP/1.0 answer")
	case status == 101:
		return nil, malformed("status 101: no protocol switch was asked for")
	case status < 200:
		return nil, nil // interim: the answer follows
	case status == 204 || status == 304:
		a.Length = 0
		a.Body = &fixedBody{}
	case chunked:
		// Transfer-Encoding wins over Content-Length; a server that sent both cannot be
		// trusted with the framing of the next answer (RFC 9112 §6.3).
		if a.Length >= 0 {
			a.KeepAlive = false
		}
		a.Length = -1
		a.Body = &chunkedBody{br: br}
	case a.Length >= 0:
		a.Body = &fixedBody{br: br, left: a.Length}
	default:
		a.KeepAlive = false
		a.Body = &closeBody{br: br}
	}
	return a, nil
}

// readLine reads a line of the head without its CRLF (or bare LF), charged to left.
func readLine(br *bufio.Reader, left *int) (string, error) {
	line, err := br.ReadSlice('\n')
	*left -= len(line)
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", malformed("a header line longer than %d bytes", lineBytes)
	case errors.Is(err, io.EOF):
		return "", io.ErrUnexpectedEOF
	case err != nil:
		return "", err
	case *left < 0:
		return "", malformed("headers longer than %d bytes", maxHeaderBytes)
	}
	return string(trimEOL(line)), nil
}

// readChunkLine is readLine for the chunked coding, where a line must end with CRLF: a
// bare LF there is a framing that proxies disagree on (request smuggling), and net/http
// refuses it too.
func readChunkLine(br *bufio.Reader, left *int) (string, error) {
	line, err := br.ReadSlice('\n')
	*left -= len(line)
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", malformed("a chunk line longer than %d bytes", lineBytes)
	case errors.Is(err, io.EOF):
		return "", io.ErrUnexpectedEOF
	case err != nil:
		return "", err
	case *left < 0:
		return "", malformed("trailers longer than %d bytes", maxHeaderBytes)
	case len(line) < 2 || line[len(line)-2] != '\r':
		return "", malformed("a chunk line that ends with a bare LF")
	}
	return string(line[:len(line)-2]), nil
}

func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// fixedBody is a body of Content-Length bytes.
type fixedBody struct {
	br   *bufio.Reader
	left int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if b.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}

func (b *fixedBody) Complete() bool { return b.left == 0 }

// closeBody is a body that ends with the connection: never followed by another answer.
type closeBody struct{ br *bufio.Reader }

func (b *closeBody) Read(p []byte) (int, error) { return b.br.Read(p) }
func (b *closeBody) Complete() bool             { return false }

// chunkedBody decodes the chunked transfer coding (RFC 9112 §7.1); chunk extensions
// and trailer fields are read and ignored.
type chunkedBody struct {
	br   *bufio.Reader
	left int64 // bytes left in the current chunk
	err  error // sticky: io.EOF after the last chunk and its trailers
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	for b.err == nil && b.left == 0 {
		b.err = b.nextChunk()
	}
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.err = io.ErrUnexpectedEOF
	case err != nil:
		b.err = err
	case b.left == 0:
		b.err = b.crlf()
	}
	if b.err != nil && !errors.Is(b.err, io.EOF) {
		return n, b.err
	}
	return n, nil
}

// nextChunk reads a chunk-size line; after the last chunk, the trailers, and io.EOF.
func (b *chunkedBody) nextChunk() error {
	left := lineBytes
	line, err := readChunkLine(b.br, &left)
	if err != nil {
		return err
	}
	size, _, _ := strings.Cut(line, ";")
	size = strings.TrimRight(size, " \t")
	if size == "" || len(size) > 15 { // at most 2^60-1: no overflow
		return malformed("chunk size %q", truncate(line, 32))
	}
	n, err := strconv.ParseInt(size, 16, 64)
	if err != nil || n < 0 || strings.HasPrefix(size, "+") || strings.HasPrefix(size, "-") {
		return malformed("chunk size %q", truncate(line, 32))
	}
	if n > 0 {
		b.left = n
		return nil
	}
	left = maxHeaderBytes
	for {
		line, err := readChunkLine(b.br, &left)
		if err != nil {
			return err
		}
		if line == "" {
			return io.EOF
		}
		// A trailer field is a header field, ignored, but well formed.
		if name, value, ok := strings.Cut(line, ":"); !ok || !isToken(name) || !isFieldValue(value) {
			return malformed("trailer line %q", truncate(line, 64))
		}
	}
}

// isFieldValue says whether s holds only what a field value may (RFC 9110 §5.5): visible
// characters, space, tab and obs-text; no other control character (a CR there is a
// framing that net/http refuses).
func isFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// isToken says whether s is an HTTP token (RFC 9110 §5.6.2), as a field name must be.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// crlf reads the CRLF after a chunk's data (a bare LF is refused, as net/http does).
func (b *chunkedBody) crlf() error {
	var two [2]byte
	_, err := io.ReadFull(b.br, two[:])
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return io.ErrUnexpectedEOF
	case err != nil:
		return err
	case two != [2]byte{'\r', '\n'}:
		return malformed("no CRLF after a chunk")
	}
	return nil
}

func (b *chunkedBody) Complete() bool { return errors.Is(b.err, io.EOF) }

// isDigits says whether s is one or more ASCII digits.
func isDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// truncate shortens s to n bytes, marked "...", for an error message.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
