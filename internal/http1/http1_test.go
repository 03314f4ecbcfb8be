package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzReadAnswer: any bytes from a server give an answer or an error, never a panic
// or an unbounded read; an answer that is read agrees with net/http's reading of the
// same bytes on the status and, for a Content-Length body, on the body.
func FuzzReadAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=1\r\n{\r\n1\r\n}\r\n0\r\nTrailer: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nConnection: close\r\n\r\nbusy",
		"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nbody to the end",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Encoding:  br \r\nContent-Length: 2\r\n\r\n{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadAnswer(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		body, berr := io.ReadAll(io.LimitReader(a.Body, 1<<20))
		if a.Status < 100 || a.Status > 999 {
			t.Fatalf("status %d", a.Status)
		}
		ref, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if rerr != nil || ref.StatusCode < 200 {
			return // net/http stricter or looser about the head: no comparison
		}
		if ref.StatusCode != a.Status {
			t.Fatalf("status %d, net/http %d", a.Status, ref.StatusCode)
		}
		if enc := strings.Join(ref.Header.Values("Content-Encoding"), ", "); enc != a.Encoding {
			t.Fatalf("Content-Encoding %q, net/http %q", a.Encoding, enc)
		}
		// The keep-alive decision: never reuse a connection that net/http would close
		// (HTTP/1.0, Connection: close, a body that ends with the connection).
		if a.KeepAlive && ref.Close {
			t.Fatalf("keeps the connection alive, net/http closes it")
		}
		chunked := len(ref.TransferEncoding) > 0 && strings.EqualFold(ref.TransferEncoding[0], "chunked")
		if _, ours := a.Body.(*chunkedBody); ours != chunked && a.Status != 204 && a.Status != 304 {
			t.Fatalf("chunked %v, net/http %v", ours, chunked)
		}
		want, werr := io.ReadAll(io.LimitReader(ref.Body, 1<<20))
		switch {
		case chunked && berr == nil && werr == nil:
			// Chunked bodies, decoded by both: the same bytes.
			if !bytes.Equal(body, want) {
				t.Fatalf("chunked body %q, net/http %q", body, want)
			}
		case chunked && berr == nil && a.Body.Complete():
			t.Fatalf("read a chunked body to its end (%q) that net/http refuses: %v", body, werr)
		case !chunked && a.Length >= 0 && berr == nil && ref.ContentLength == a.Length:
			if !bytes.Equal(body, want) {
				t.Fatalf("body %q, net/http %q", body, want)
			}
		}
	})
}

// TestReadAnswerFraming: the body and the keep-alive decision of answers as servers and
// proxies frame them, and the framings that are refused (the last ones found by
// FuzzReadAnswer against net/http).
func TestReadAnswerFraming(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		body      string
		keepAlive bool
		refused   string // a fragment of the error, reading the head or the body
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", body: "{}", keepAlive: true},
		{name: "chunked with extension and trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\n{\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n", body: "{}", keepAlive: true},
		{name: "chunked and a length", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\n{}\r\n0\r\n\r\n", body: "{}"},
		{name: "Connection: close", in: "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", body: "{}"},
		{name: "to the end of the connection", in: "HTTP/1.1 200 OK\r\n\r\nall of it", body: "all of it"},
		{name: "bare LF in the head", in: "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", body: "{}", keepAlive: true},
		{name: "chunked in HTTP/1.0", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused: "HTTP/1.0"},
		{name: "bare LF after a chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n", refused: "bare LF"},
		{name: "bare LF after chunk data", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\n0\r\n\r\n", refused: "no CRLF after a chunk"},
		{name: "trailer without a name", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\":\r\n\r\n", refused: "trailer line"},
		{name: "trailer without a colon", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n0\r\n\r\n", refused: "trailer line"},
		{name: "two lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", refused: "Content-Length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ReadAnswer(bufio.NewReader(strings.NewReader(tc.in)))
			var body []byte
			if err == nil {
				body, err = io.ReadAll(a.Body)
			}
			switch {
			case tc.refused != "":
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("read %q, %v; want an error with %q", body, err, tc.refused)
				}
			case err != nil:
				t.Fatal(err)
			case string(body) != tc.body || a.KeepAlive != tc.keepAlive:
				t.Fatalf("body %q keep-alive %v; want %q %v", body, a.KeepAlive, tc.body, tc.keepAlive)
			}
		})
	}
}
