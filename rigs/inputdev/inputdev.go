// Package inputdev fakes a Linux input event device for tests: a FIFO that the evdev
// source opens as /dev/input/eventN, and the bytes the kernel would write to it.
package inputdev

import (
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// event is struct input_event as the kernel lays it out for this GOARCH (16 bytes on
// 32-bit arm, 24 on arm64 and amd64).
type event struct {
	Time  unix.Timeval
	Type  uint16
	Code  uint16
	Value int32
}

// Linux input codes of a touch.
const (
	evSyn      = 0x00
	evKey      = 0x01
	evAbs      = 0x03
	synReport  = 0
	btnTouch   = 0x14a
	absMTPosX  = 0x35
	absMTPress = 0x3a
)

// Touch returns the bytes of one touch on a touch screen: BTN_TOUCH, a position and a
// pressure, then SYN_REPORT.
func Touch() []byte {
	now := unix.NsecToTimeval(time.Now().UnixNano())
	evs := []event{{now, evKey, btnTouch, 1}, {now, evAbs, absMTPosX, 100}, {now, evAbs, absMTPress, 30}, {now, evSyn, synReport, 0}}
	b := make([]byte, 0, len(evs)*int(unsafe.Sizeof(event{})))
	for i := range evs {
		b = append(b, unsafe.Slice((*byte)(unsafe.Pointer(&evs[i])), unsafe.Sizeof(evs[i]))...)
	}
	return b
}

// Device is a FIFO standing in for an input event device.
type Device struct {
	Path string
}

// New makes the FIFO at path with mode (whatever the umask), 0600 as an input device
// is.
func New(t testing.TB, path string, mode ...os.FileMode) *Device {
	t.Helper()
	m := os.FileMode(0o600)
	if len(mode) > 0 {
		m = mode[0]
	}
	if err := unix.Mkfifo(path, uint32(m)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, m); err != nil {
		t.Fatal(err)
	}
	return &Device{Path: path}
}

// Writer opens path's writing end: Device.Writer.
func Writer(t testing.TB, path string) *os.File {
	t.Helper()
	return (&Device{Path: path}).Writer(t)
}

// Writer opens the writing end once the source has opened the reading end (opening a
// FIFO for writing blocks until there is a reader), within 10 s. It is closed at
// the end of the test.
func (d *Device) Writer(t testing.TB) *os.File {
	t.Helper()
	type result struct {
		f   *os.File
		err error
	}
	opened := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(d.Path, os.O_WRONLY, 0)
		opened <- result{f, err}
	}()
	select {
	case r := <-opened:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.f.Close() })
		return r.f
	case <-time.After(10 * time.Second):
		// Release the blocked open with a reader of our own.
		if fd, err := unix.Open(d.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			if r := <-opened; r.f != nil {
				r.f.Close()
			}
			unix.Close(fd)
		}
		t.Fatalf("the source did not open %s within 10 s", d.Path)
		return nil
	}
}
