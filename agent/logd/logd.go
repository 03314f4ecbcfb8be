package logd

import (
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Android's log daemon (docs/config.md, log "auto" and "logd").
const (
	Socket    = "/dev/socket/logdw"
	logdTag   = "amosd"
	logIDMain = 0 // LOG_ID_MAIN
	prioInfo  = 4 // ANDROID_LOG_INFO
	maxLogMsg = 4068
)

// NewLogger returns the daemon's log function for the configuration's "log" value:
// "stderr", "logd" (Android's logd datagram socket at socket, normally Socket,
// falling back to stderr with a line saying why), or "auto" (logd if its socket
// exists, else stderr). Lines never carry keys, tokens or certificate bytes: callers
// log identifiers only.
// toLogd says whether the lines go to logd rather than stderr.
func NewLogger(mode, socket string, stderr io.Writer) (logf func(format string, args ...any), closeFn func(), toLogd bool) {
	std := log.New(stderr, "amosd: ", log.LstdFlags)
	if mode == "stderr" {
		return std.Printf, func() {}, false
	}
	if _, err := os.Stat(socket); err != nil && mode == "auto" {
		return std.Printf, func() {}, false
	}
	w, err := Dial(socket)
	if err != nil {
		std.Printf("log: logd: %v; logging to stderr", err)
		return std.Printf, func() {}, false
	}
	return w.Printf, func() { w.Close() }, true
}

// Writer writes log lines to logd with its datagram protocol: an 11-byte header
// (log id, thread id, realtime seconds and nanoseconds, little-endian), the priority,
// the tag and the message, each NUL-terminated.
type Writer struct {
	mu sync.Mutex
	fd int
}

// Dial connects a datagram socket to logd's socket at path.
func Dial(path string) (*Writer, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	return &Writer{fd: fd}, nil
}

// logdPacket encodes one log line.
func logdPacket(now time.Time, tid int, msg string) []byte {
	if len(msg) > maxLogMsg {
		msg = msg[:maxLogMsg]
	}
	msg = strings.ReplaceAll(msg, "\x00", " ")
	b := make([]byte, 0, 11+1+len(logdTag)+1+len(msg)+1)
	b = append(b, logIDMain)
	b = binary.LittleEndian.AppendUint16(b, uint16(tid))
	b = binary.LittleEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.LittleEndian.AppendUint32(b, uint32(now.Nanosecond()))
	b = append(b, prioInfo)
	b = append(append(b, logdTag...), 0)
	return append(append(b, msg...), 0)
}

// Printf logs one line; a lost line (logd busy or gone) is dropped, never blocking.
func (w *Writer) Printf(format string, args ...any) {
	p := logdPacket(time.Now(), unix.Gettid(), fmt.Sprintf(format, args...))
	w.mu.Lock()
	defer w.mu.Unlock()
	unix.Sendto(w.fd, p, unix.MSG_DONTWAIT, nil)
}

// Close closes the socket.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return unix.Close(w.fd)
}
