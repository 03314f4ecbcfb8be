package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBoltOpen(t *testing.T) {
	t.Run("in use", func(t *testing.T) {
		dir := t.TempDir()
		l, err := OpenBolt(dir, BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		start := time.Now()
		if _, err := OpenBolt(dir, BoltOptions{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrInUse) {
			t.Errorf("second open: %v, want ErrInUse", err)
		}
		if _, err := OpenBolt(dir, BoltOptions{LockTimeout: 100 * time.Millisecond, ReadOnly: true}); !errors.Is(err, ErrInUse) {
			t.Errorf("read-only open: %v, want ErrInUse", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("read-only missing", func(t *testing.T) {
		if _, err := OpenBolt(t.TempDir(), BoltOptions{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, BoltFileName), make([]byte, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenBolt(dir, BoltOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("err %v, want ErrCorrupt", err)
		}
		if _, err := os.Stat(filepath.Join(dir, BoltFileName)); err != nil {
			t.Errorf("the file was moved: %v", err)
		}
	})
}
