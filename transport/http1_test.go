package transport

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
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nConnection: close\r\n\r\nbusy",
		"HTTP/1.0 200 OK\r\n\r\nbody to the end",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"HTTP/1.1 2000 OK\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readAnswer(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		body, berr := io.ReadAll(io.LimitReader(a.body, 1<<20))
		if a.status < 100 || a.status > 999 {
			t.Fatalf("status %d", a.status)
		}
		ref, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if rerr != nil || ref.StatusCode < 200 {
			return // net/http stricter or looser about the head: no comparison
		}
		if ref.StatusCode != a.status {
			t.Fatalf("status %d, net/http %d", a.status, ref.StatusCode)
		}
		if a.length >= 0 && berr == nil && ref.ContentLength == a.length && !strings.EqualFold(ref.Header.Get("Transfer-Encoding"), "chunked") {
			want, _ := io.ReadAll(ref.Body)
			if !bytes.Equal(body, want) {
				t.Fatalf("body %q, net/http %q", body, want)
			}
		}
	})
}
