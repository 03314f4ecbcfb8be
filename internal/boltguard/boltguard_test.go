package boltguard

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRun(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(2 * os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, 2*os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	want := errors.New("plain")
	for _, tc := range []struct {
		name  string
		fn    func() error
		panic bool
		err   error
	}{
		{"nil", func() error { return nil }, false, nil},
		{"error", func() error { return want }, false, want},
		{"panic", func() error { panic("page 7: unreachable") }, true, nil},
		{"memory fault", func() error {
			// What bbolt meets on a file truncated under its mmap: SIGBUS on a read.
			if m[os.Getpagesize()] != 0 {
				return errors.New("read a byte of a truncated file")
			}
			return nil
		}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(tc.fn)
			var pe *PanicError
			if got := errors.As(err, &pe); got != tc.panic {
				t.Fatalf("Run: %v, a PanicError: %v, want %v", err, got, tc.panic)
			}
			if !tc.panic && !errors.Is(err, tc.err) {
				t.Fatalf("Run: %v, want %v", err, tc.err)
			}
		})
	}
}
