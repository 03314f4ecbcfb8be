package http1

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server answers each request read on a loopback connection with the next of answers
// (cycling), and closes a connection after an answer that says Connection: close, or
// after closeAfter answers (a server that drops kept connections).
type server struct {
	ln      net.Listener
	accepts atomic.Int32
}

func startServer(t *testing.T, closeAfter int, answers ...string) *server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for served := 0; closeAfter == 0 || served < closeAfter; served++ {
					if _, err := readRequest(br); err != nil {
						return
					}
					ans := answers[n%len(answers)]
					n++
					c.Write([]byte(ans))
					if strings.Contains(ans, "Connection: close") {
						return
					}
				}
			}()
		}
	}()
	return s
}

// readRequest reads a request of AppendPost: its head, then Content-Length bytes.
func readRequest(br *bufio.Reader) (string, error) {
	var head strings.Builder
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			for _, c := range strings.TrimSpace(v) {
				length = length*10 + int(c-'0')
			}
		}
	}
	body := make([]byte, length)
	_, err := io.ReadFull(br, body)
	return head.String() + string(body), err
}

func (s *server) client() *Client {
	return New(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.ln.Addr().String())
	})
}

func roundTrip(t *testing.T, c *Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := c.RoundTrip(ctx, AppendPost(nil, "records.test", "/v1/records", "amosd/test", "application/x", []byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(a)
	b, err := io.ReadAll(a.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClientConnections: a kept-alive connection carries the next request; one the
// answer closes does not; a kept connection the server dropped is replaced once, and the
// request goes through.
func TestClientConnections(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	closing := "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
	for _, tc := range []struct {
		name       string
		closeAfter int
		answers    []string
		accepts    int32
	}{
		{"kept alive", 0, []string{ok}, 1},
		{"Connection: close", 0, []string{closing}, 3},
		{"dropped by the server", 1, []string{ok}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, tc.closeAfter, tc.answers...)
			c := s.client()
			defer c.CloseIdle()
			for range 3 {
				if got := roundTrip(t, c); got != "ok" {
					t.Fatalf("body %q", got)
				}
			}
			if got := s.accepts.Load(); got != tc.accepts {
				t.Errorf("%d connections, want %d", got, tc.accepts)
			}
		})
	}
}

// TestAppendPost: the head net/http sends, byte for byte.
func TestAppendPost(t *testing.T) {
	got := string(AppendPost([]byte("x"), "records.test:8443", "/v1/records", "amosd/1", "application/vnd.amos.batch", []byte("ab")))
	want := "xPOST /v1/records HTTP/1.1\r\nHost: records.test:8443\r\nUser-Agent: amosd/1\r\nContent-Length: 2\r\nContent-Type: application/vnd.amos.batch\r\n\r\nab"
	if got != want {
		t.Errorf("%q\nwant %q", got, want)
	}
}
