package logd

import (
	"bytes"
	"encoding/binary"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestLogdWriter sends lines to a datagram socket standing in for logd and checks
// each packet byte by byte.
func TestLogdWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logdw")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := time.Now()
	w.Printf("minted epoch %d seq %d", 1, 2)
	buf := make([]byte, 8192)
	ln.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	p := buf[:n]
	sec := binary.LittleEndian.Uint32(p[3:7])
	want := append([]byte{4}, []byte("amosd\x00minted epoch 1 seq 2\x00")...)
	switch {
	case p[0] != 0:
		t.Errorf("log id %d, want main (0)", p[0])
	case int64(sec) < before.Unix() || int64(sec) > time.Now().Unix():
		t.Errorf("realtime %d, now is %d", sec, time.Now().Unix())
	case binary.LittleEndian.Uint32(p[7:11]) >= 1e9:
		t.Errorf("nanoseconds %d", binary.LittleEndian.Uint32(p[7:11]))
	case !bytes.Equal(p[11:], want):
		t.Errorf("payload %q, want %q", p[11:], want)
	}
	// A message with a NUL or beyond the limit stays one well-formed packet.
	long := logdPacket(time.Now(), 1, string(bytes.Repeat([]byte("x\x00"), 5000)))
	if len(long) != 11+1+6+maxLogMsg+1 || bytes.Count(long[11:], []byte{0}) != 2 {
		t.Errorf("long packet: %d bytes, %d NULs", len(long), bytes.Count(long[11:], []byte{0}))
	}
}

func TestNewLoggerModes(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "logdw")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	missing := filepath.Join(dir, "none")
	tests := []struct {
		mode, socket string
		toLogd       bool
		stderr       string // expected on stderr
	}{
		{"stderr", socket, false, "amosd: "},
		{"auto", socket, true, ""},
		{"auto", missing, false, "amosd: "},
		{"logd", socket, true, ""},
		{"logd", missing, false, "logging to stderr"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		logf, closeFn, toLogd := NewLogger(tc.mode, tc.socket, &out)
		if toLogd != tc.toLogd {
			t.Errorf("%s with %s: to logd %v", tc.mode, tc.socket, toLogd)
		}
		logf("line for %s", tc.mode)
		closeFn()
		if !bytes.Contains(out.Bytes(), []byte(tc.stderr)) {
			t.Errorf("%s with %s: stderr %q", tc.mode, tc.socket, out.String())
		}
		if tc.toLogd {
			buf := make([]byte, 4096)
			ln.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := ln.Read(buf)
			if err != nil || !bytes.Contains(buf[:n], []byte("line for "+tc.mode)) || out.Len() != 0 {
				t.Errorf("%s: logd got %q (%v), stderr %q", tc.mode, buf[:n], err, out.String())
			}
		} else if !bytes.Contains(out.Bytes(), []byte("line for "+tc.mode)) {
			t.Errorf("%s with %s: the line is not on stderr: %q", tc.mode, tc.socket, out.String())
		}
	}
}
