package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"amos.example/amosd/internal/http1"
	"amos.example/amosd/internal/resolve"
	"amos.example/amosd/proof"
)

// Defaults and limits of a Client.
const (
	// DefaultTimeout is the default of Config.Timeout (sync.timeout of docs/config.md).
	DefaultTimeout = 30 * time.Second
	// MaxResponseBytes bounds the body of an answer; a longer one is a protocol error.
	MaxResponseBytes = 1 << 20
	// DefaultUserAgent is sent when Config.UserAgent is empty. It is short on purpose:
	// every byte of every request counts against the wire budget of README.md's budget table.
	DefaultUserAgent = "amosd"
	// RecordsPath is the path of the upload endpoint, below server_url.
	RecordsPath = "/v1/records"
)

// Dead-letter reasons that Upload gives itself when a single record is refused as a
// whole batch (docs/protocol.md names no reason for these answers).
const (
	ReasonBadFormat = "bad_format" // a one-record batch answered 400
	ReasonTooLarge  = "too_large"  // a one-record batch answered 413
)

// errorBodyBytes is how much of a non-200 body is read (and dropped) so that the
// connection can be reused.
const errorBodyBytes = 4 << 10

// Config configures a Client. It mirrors the keys of docs/config.md that the transport uses.
type Config struct {
	// ServerURL is server_url: https://host[:port][/prefix]; uploads go to
	// ServerURL + "/v1/records". http:// is refused unless AllowInsecureHTTP is set.
	ServerURL string
	// CAFile is ca_file: a PEM file of one or more CA certificates, the only roots the
	// server's certificate is verified against. Required for https.
	CAFile string
	// AllowInsecureHTTP is allow_insecure_http: permits an http:// ServerURL (tests only).
	AllowInsecureHTTP bool
	// Timeout is sync.timeout: the longest one HTTP request may take, from dialling to
	// the last byte of the answer (connect, TLS handshake and response each bounded by
	// it too). 0 means DefaultTimeout.
	Timeout time.Duration
	// BatchRecords is sync.batch_records: at most this many records per request
	// (1..proof.MaxBatchRecords). 0 means proof.MaxBatchRecords.
	BatchRecords int
	// DNSServers is dns_servers: IP or IP:port of DNS servers (port 53 by default), used
	// only when the system has no /etc/resolv.conf and no Android
	// /dev/socket/dnsproxyd (docs/config.md). Queries go to them in turn. Names are resolved
	// through dnsproxyd whenever it exists (see Resolver).
	DNSServers []string
	// UserAgent is the User-Agent header; "" means DefaultUserAgent.
	UserAgent string
}

// Client uploads batches to the collector. Its methods are safe for concurrent use, but
// docs/protocol.md wants at most one upload in flight, and the wire figures of a Result are only
// exact when Uploads do not overlap.
type Client struct {
	endpoint  string // the URL uploads go to, for messages
	host      string // the Host header: server_url's host[:port]
	path      string // the request target: server_url's path + RecordsPath
	dialAddr  string // host:port to connect to
	userAgent string
	timeout   time.Duration
	batch     int
	tlsConf   *tls.Config // nil for http://
	resolver  *resolve.Resolver
	wire      atomic.Int64 // bytes read and written on the client's connections

	http *http1.Client // one kept-alive connection at a time
}

// options are knobs of New that only tests need.
type options struct {
	noSessionCache bool   // measure full handshakes
	resolvConf     string // path of resolv.conf, for the dns_servers rule
	dnsproxyd      string // path of Android's dnsproxyd socket, likewise
	dialTo         string // if set, every connection goes to this address
}

// New checks cfg and returns a Client. It loads and pins the CA of cfg.CAFile; errors
// wrap ErrConfig and name the setting (and the file) at fault.
func New(cfg Config) (*Client, error) {
	return newClient(cfg, options{resolvConf: resolve.ResolvConfPath, dnsproxyd: resolve.DnsproxydPath})
}

func newClient(cfg Config, opt options) (*Client, error) {
	u, err := url.Parse(cfg.ServerURL)
	switch {
	case err != nil:
		return nil, configErr("server_url: %q is not a URL: %v", cfg.ServerURL, err)
	case u.Host == "" || u.Hostname() == "":
		return nil, configErr("server_url: %q has no host", cfg.ServerURL)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, configErr("server_url: %q: no user, query or fragment allowed", cfg.ServerURL)
	case u.Scheme == "http" && !cfg.AllowInsecureHTTP:
		return nil, configErr("server_url: %q is plain http: use https, or set allow_insecure_http (tests only)", cfg.ServerURL)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, configErr("server_url: %q: scheme %q, want https", cfg.ServerURL, u.Scheme)
	case cfg.Timeout < 0:
		return nil, configErr("sync.timeout: %s, want more than 0", cfg.Timeout)
	case cfg.BatchRecords < 0 || cfg.BatchRecords > proof.MaxBatchRecords:
		return nil, configErr("sync.batch_records: %d, want 1..%d", cfg.BatchRecords, proof.MaxBatchRecords)
	case strings.ContainsFunc(cfg.UserAgent, func(r rune) bool { return r < 0x20 || r >= 0x7f }):
		return nil, configErr("user agent %q: printable ASCII only", cfg.UserAgent)
	case strings.ContainsFunc(u.Host, func(r rune) bool { return r <= 0x20 || r >= 0x7f }):
		return nil, configErr("server_url: %q: the host must be ASCII (write an international name in its xn-- form)", cfg.ServerURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/") + RecordsPath
	c := &Client{
		endpoint:  u.Scheme + "://" + u.Host + path,
		host:      u.Host,
		path:      path,
		dialAddr:  net.JoinHostPort(u.Hostname(), port),
		userAgent: cfg.UserAgent,
		timeout:   cfg.Timeout,
		batch:     cfg.BatchRecords,
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.batch == 0 {
		c.batch = proof.MaxBatchRecords
	}

	if opt.dialTo != "" {
		c.dialAddr = opt.dialTo
	}
	if u.Scheme == "https" {
		if cfg.CAFile == "" {
			return nil, configErr("ca_file: required for an https server_url")
		}
		pool, err := loadCAs(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		c.tlsConf = &tls.Config{
			RootCAs:    pool, // only these: a non-nil RootCAs never consults system roots
			ServerName: u.Hostname(),
			MinVersion: tls.VersionTLS12,
			NextProtos: nil, // no ALPN: HTTP/1.1 only, and no bytes spent saying so
			// Classic X25519 (P-256 as a fallback) without the post-quantum hybrids of
			// Go's default: their key shares add about 2.3 KB to every handshake, which
			// alone would exceed the wire budget of README.md's budget table for 31 daily syncs.
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		}
		if !opt.noSessionCache {
			// Resumed handshakes skip the certificate chain and its verification.
			c.tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		}
	}

	c.resolver, err = resolve.NewAt(cfg.DNSServers, c.timeout, opt.resolvConf, opt.dnsproxyd)
	if err != nil {
		return nil, classify(err, []error{ErrConfig}, "")
	}
	c.http = http1.New(c.dial)
	return c, nil
}

func configErr(format string, args ...any) error {
	return classify(nil, []error{ErrConfig}, "transport: "+format, args...)
}

// loadCAs reads a PEM bundle of CA certificates. Every block must be a CERTIFICATE that
// parses: a damaged bundle is an error, not silently fewer roots.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, classify(err, []error{ErrConfig}, "transport: ca_file %s", path)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, configErr("ca_file %s: data after certificate %d is not PEM", path, n)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, configErr("ca_file %s: PEM block %d is %q, want CERTIFICATE", path, n+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, configErr("ca_file %s: certificate %d: %v", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, configErr("ca_file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// dial opens a connection to the server within ctx: resolver, TCP, TLS handshake; its
// bytes are counted in the Result's WireBytes.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	raw, err := c.resolver.DialContext(ctx, "tcp", c.dialAddr)
	if err != nil {
		return nil, err
	}
	conn := net.Conn(&countingConn{Conn: raw, n: &c.wire})
	if c.tlsConf != nil {
		tc := tls.Client(conn, c.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	return conn, nil
}

// CloseIdleConnections closes the connection kept alive from an earlier request. Upload
// does it before returning; it is here for a caller that shuts down.
func (c *Client) CloseIdleConnections() { c.http.CloseIdle() }

// Resolver returns the Resolver that the Client's connections find the server with;
// Resolver().Source() says which source it uses now.
func (c *Client) Resolver() *resolve.Resolver { return c.resolver }

// WireBytes returns the bytes read and written on the Client's TCP connections since
// New, TLS included (TCP/IP headers are not): the figure budgets.
func (c *Client) WireBytes() int64 { return c.wire.Load() }

// Refusal is a record refused for good: it goes to dead-letter with Reason, one of the
// reasons of docs/protocol.md, or ReasonBadFormat / ReasonTooLarge when the server refused it
// alone as a batch (400 / 413).
type Refusal struct {
	ID     RecordID
	Reason string
}

// Result is what an Upload settled, each list in request order (oldest first). A record
// in neither Acked nor Dead stays queued, whether the server asked to retry it (Kept) or
// the upload stopped before it was answered.
type Result struct {
	// ServerTime is the server_time of the last 200 answer, 0 if there was none. It
	// feeds trusted time (docs/protocol.md); the caller notes when it got it.
	ServerTime int64
	// Acked are the records the server accepted or already had: delete them from the
	// queue.
	Acked []RecordID
	// Dead are the records refused for good: move them to dead-letter.
	Dead []Refusal
	// Kept are the records the server answered retry (chain_gap): keep them.
	Kept []RecordID
	// Requests is the number of HTTP requests made, failed ones included.
	Requests int
	// BytesSent and BytesReceived count HTTP bodies: batches sent and answers read.
	BytesSent, BytesReceived int64
	// WireBytes counts both directions on the TCP connections during this Upload, TLS
	// and HTTP headers included.
	WireBytes int64
}

// Settled returns how many records the Result settles (acked or dead).
func (r *Result) Settled() int { return len(r.Acked) + len(r.Dead) }

// item is one record to send and its identity.
type item struct {
	id  RecordID
	rec []byte
}

// Upload sends records, oldest first, and returns what the server settled. Records are
// cut into batches of at most Config.BatchRecords records and proof.MaxBatchBytes bytes,
// sent one after the other, each in one request.
//
// A batch answered 400 or 413 is halved and each half is sent in turn, recursively; a
// single record still answered 400 or 413 is dead-lettered with ReasonBadFormat or
// ReasonTooLarge. Any other failure stops the Upload: it returns what was settled before
// it, a non-nil Result in every case, together with the error, and the caller applies
// that Result before backing off. The error then matches ErrTransient (a
// *RetryAfterError for 429 and 503 with Retry-After, a *StatusError for other statuses)
// or ErrTLS. A cancelled or expired ctx ends the Upload with an error matching both
// ErrTransient and ctx.Err().
//
// Upload closes its idle connections before it returns: a phone syncs about once a day,
// and the next sync resumes the TLS session on a new connection.
func (c *Client) Upload(ctx context.Context, records [][]byte) (*Result, error) {
	res := &Result{}
	if len(records) == 0 {
		return res, nil
	}
	items := make([]item, len(records))
	for i, rec := range records {
		r, err := proof.Decode(rec)
		if err != nil {
			return res, classify(err, []error{ErrInvalidRecord}, "transport: record %d of %d", i, len(records))
		}
		items[i] = item{RecordID{r.Epoch, r.Seq}, rec}
	}
	wire0 := c.wire.Load()
	defer func() {
		c.CloseIdleConnections()
		res.WireBytes = c.wire.Load() - wire0
	}()
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && n < c.batch && size+2+len(items[n].rec) <= proof.MaxBatchBytes {
			size += 2 + len(items[n].rec)
			n++
		}
		if n == 0 { // cannot happen: a decoded record is far below 64 KiB
			return res, classify(nil, []error{ErrInvalidRecord}, "transport: %s does not fit in a batch", items[0].id)
		}
		if err := c.send(ctx, items[:n], res); err != nil {
			return res, err
		}
		items = items[n:]
	}
	return res, nil
}

// send uploads one batch, splitting it on 400 and 413, and adds what was settled to res.
func (c *Client) send(ctx context.Context, items []item, res *Result) error {
	status, err := c.post(ctx, items, res)
	if err != nil {
		return err
	}
	if status == statusOK {
		return nil
	}
	// 400 or 413: the batch as a whole was refused.
	if len(items) == 1 {
		reason := ReasonBadFormat
		if status == statusTooLarge {
			reason = ReasonTooLarge
		}
		res.Dead = append(res.Dead, Refusal{items[0].id, reason})
		return nil
	}
	half := len(items) / 2
	if err := c.send(ctx, items[:half], res); err != nil {
		return err
	}
	return c.send(ctx, items[half:], res)
}

// post makes one request for items. It returns 200 after applying the answer to res,
// 400 or 413 for the caller to split, or an error for anything else.
func (c *Client) post(ctx context.Context, items []item, res *Result) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, classify(err, transientOnly, "transport: upload")
	}
	recs := make([][]byte, len(items))
	ids := make([]RecordID, len(items))
	for i, it := range items {
		recs[i], ids[i] = it.rec, it.id
	}
	body, err := proof.EncodeBatch(recs)
	if err != nil {
		return 0, classify(err, []error{ErrInvalidRecord}, "transport: batch from %s", ids[0])
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	what := fmt.Sprintf("transport: POST %s (%d records from %s)", c.endpoint, len(items), ids[0])

	res.Requests++
	a, err := c.http.RoundTrip(rctx, http1.AppendPost(make([]byte, 0, 256+len(body)), c.host, c.path, c.userAgent, proof.BatchContentType, body))
	if err != nil {
		return 0, c.requestErr(ctx, err, what)
	}
	defer c.http.Release(a)
	res.BytesSent += int64(len(body))

	switch a.Status {
	case statusOK:
	case statusBadRequest, statusTooLarge:
		c.drain(a.Body, res)
		return a.Status, nil
	case statusTooMany, statusUnavailable:
		c.drain(a.Body, res)
		d, err := retryAfter(a.Date, a.RetryAfter, time.Now())
		if err != nil {
			return 0, &StatusError{StatusCode: a.Status, Detail: err.Error()}
		}
		return 0, &RetryAfterError{StatusCode: a.Status, After: d}
	default:
		c.drain(a.Body, res)
		return 0, &StatusError{StatusCode: a.Status}
	}

	if !identity(a.Encoding) { // a proxy compressed it: amosd asks for no coding, decodes none
		c.drain(a.Body, res)
		return 0, protocolErr("%s: answer in content coding %q, which amosd does not decode: it sends no Accept-Encoding, so a proxy must not compress /v1/records", what, truncate(a.Encoding, 32))
	}
	if a.Length > MaxResponseBytes { // refused before a byte of it is paid for
		return 0, protocolErr("%s: answer of %d bytes, at most %d", what, a.Length, MaxResponseBytes)
	}
	data, err := readAnswer(a.Body, a.Length)
	res.BytesReceived += int64(len(data))
	if errors.Is(err, errAnswerTooLong) {
		res.BytesReceived++ // the byte that told
		return 0, protocolErr("%s: answer longer than %d bytes", what, MaxResponseBytes)
	}
	if err != nil {
		if cerr := rctx.Err(); cerr != nil { // the I/O error is only the echo of the deadline
			err = cerr
		}
		return 0, c.requestErr(ctx, err, what+": reading the answer")
	}
	serverTime, outcomes, err := decodeResponse(data, ids)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	res.ServerTime = serverTime
	for i, o := range outcomes {
		switch o.status {
		case StatusAccepted, StatusDuplicate:
			res.Acked = append(res.Acked, ids[i])
		case StatusRetry:
			res.Kept = append(res.Kept, ids[i])
		case StatusRejected:
			res.Dead = append(res.Dead, Refusal{ids[i], o.reason})
		}
	}
	return statusOK, nil
}

// errAnswerTooLong is readAnswer's error for a body of unknown length longer than
// MaxResponseBytes.
var errAnswerTooLong = errors.New("answer longer than MaxResponseBytes")

// readAnswer reads the body of a 200 answer. With its Content-Length (length >= 0, at
// most MaxResponseBytes: the caller refuses a longer one first), into one allocation of
// exactly that size. Of unknown length (-1: chunked, or up to the end of the
// connection), into a buffer doubled as it fills, up to MaxResponseBytes: a byte more is
// errAnswerTooLong. Either way what it allocates is known: at most MaxResponseBytes, or
// twice that for a body of unknown length (io.ReadAll's chunks and final copy took a
// little more, and twice as much again under the race detector).
func readAnswer(body io.Reader, length int64) ([]byte, error) {
	if length >= 0 {
		data := make([]byte, min(length, MaxResponseBytes))
		n, err := io.ReadFull(body, data)
		return data[:n], err
	}
	data := make([]byte, 0, 512)
	for {
		if len(data) == cap(data) {
			if len(data) == MaxResponseBytes {
				var probe [1]byte
				n, err := io.ReadFull(body, probe[:])
				switch {
				case n > 0:
					return data, errAnswerTooLong
				case err == io.EOF: // io.EOF itself, as io.ReadAll has it: not a wrapped one
					return data, nil
				}
				return data, err
			}
			bigger := make([]byte, len(data), min(2*cap(data), MaxResponseBytes))
			copy(bigger, data)
			data = bigger
		}
		n, err := body.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
	}
}

// The HTTP statuses the protocol gives a meaning (docs/protocol.md).
const (
	statusOK          = 200
	statusBadRequest  = 400
	statusTooLarge    = 413
	statusTooMany     = 429
	statusUnavailable = 503
)

// drain reads a little of an unused body so that the connection can be reused.
func (c *Client) drain(body io.Reader, res *Result) {
	n, _ := io.Copy(io.Discard, io.LimitReader(body, errorBodyBytes))
	res.BytesReceived += n
}

// requestErr classifies a failed request: ErrTLS for authentication and handshake
// refusals, ErrTransient for everything else (with ctx's error when it is ctx's fault).
func (c *Client) requestErr(ctx context.Context, err error, what string) error {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		what += fmt.Sprintf(": no answer within %s (sync.timeout)", c.timeout)
	}
	if isTLSError(err) {
		return classify(err, tlsOnly, "%s", what)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return classify(err, []error{ErrTransient, ctxErr}, "%s", what)
	}
	return classify(err, transientOnly, "%s", what)
}

// identity reports whether a Content-Encoding (its headers joined by commas) leaves the
// body as it is: none, or only identity.
func identity(enc string) bool {
	for _, c := range strings.Split(enc, ",") {
		if c = strings.Trim(c, " \t"); c != "" && !strings.EqualFold(c, "identity") {
			return false
		}
	}
	return true
}

// isTLSError reports whether err means the server could not be authenticated or refused
// our TLS parameters, as opposed to a network failure during the handshake.
func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		alert    tls.AlertError
		header   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &invalid) ||
		errors.As(err, &hostname) || errors.As(err, &alert) || errors.As(err, &header) // a plain-HTTP answer
}

// countingConn counts the bytes read and written on a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}
