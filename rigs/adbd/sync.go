package adbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The sync service's requests and replies (SYNC.TXT): four letters, then a 4-byte
// little-endian length (or value), then that many bytes.
const (
	maxSyncPath = 1024
	maxSyncData = 64 * 1024
)

// sync serves the file transfer service: STAT, STA2 and LST2 (stat_v2), SEND with its
// DATA and DONE, QUIT. Enough for adb push.
func (s *Server) sync(ctx context.Context, st *stream) error {
	r := bufio.NewReader(st)
	w := bufio.NewWriter(st)
	for {
		id, n, err := syncHeader(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if n > maxSyncPath {
			return syncFail(w, fmt.Sprintf("path of %d bytes, over %d", n, maxSyncPath))
		}
		arg := make([]byte, n)
		if _, err := io.ReadFull(r, arg); err != nil {
			return fmt.Errorf("sync %s: %w", id, err)
		}
		switch id {
		case "STAT":
			var reply [16]byte
			copy(reply[:], "STAT")
			if fi, err := os.Stat(string(arg)); err == nil {
				binary.LittleEndian.PutUint32(reply[4:], unixMode(fi))
				binary.LittleEndian.PutUint32(reply[8:], uint32(fi.Size()))
				binary.LittleEndian.PutUint32(reply[12:], uint32(fi.ModTime().Unix()))
			}
			w.Write(reply[:])
		case "STA2", "LST2":
			w.Write(stat2(id, string(arg)))
		case "SEND":
			if err := receive(r, w, string(arg)); err != nil {
				return err
			}
		case "QUIT":
			return w.Flush()
		default:
			return syncFail(w, "unknown sync request "+strconv.Quote(id))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func syncHeader(r io.Reader) (string, uint32, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", 0, err
	}
	return string(h[:4]), binary.LittleEndian.Uint32(h[4:]), nil
}

func syncReply(w io.Writer, id string, msg []byte) {
	var h [8]byte
	copy(h[:], id)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(msg)))
	w.Write(h[:])
	w.Write(msg)
}

// syncFail tells the host why, and ends the service: the request stream is no longer
// in step.
func syncFail(w *bufio.Writer, msg string) error {
	syncReply(w, "FAIL", []byte(msg))
	w.Flush()
	return errors.New("sync: " + msg)
}

// unixMode is st_mode of a file: type bits and permissions.
func unixMode(fi fs.FileInfo) uint32 {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint32(sys.Mode)
	}
	return uint32(fi.Mode().Perm())
}

// stat2 is the reply to STA2 (stat) or LST2 (lstat): errno, then struct stat's
// fields in a fixed layout.
func stat2(id, path string) []byte {
	b := make([]byte, 72)
	copy(b, id)
	le := binary.LittleEndian
	var st syscall.Stat_t
	var err error
	if id == "LST2" {
		err = syscall.Lstat(path, &st)
	} else {
		err = syscall.Stat(path, &st)
	}
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		le.PutUint32(b[4:], uint32(errno))
		return b
	}
	le.PutUint64(b[8:], uint64(st.Dev))
	le.PutUint64(b[16:], uint64(st.Ino))
	le.PutUint32(b[24:], uint32(st.Mode))
	le.PutUint32(b[28:], uint32(st.Nlink))
	le.PutUint32(b[32:], st.Uid)
	le.PutUint32(b[36:], st.Gid)
	le.PutUint64(b[40:], uint64(st.Size))
	le.PutUint64(b[48:], uint64(st.Atim.Sec))
	le.PutUint64(b[56:], uint64(st.Mtim.Sec))
	le.PutUint64(b[64:], uint64(st.Ctim.Sec))
	return b
}

// receive takes one file of SEND "path,mode": DATA chunks until DONE (whose value is
// the mtime), into a temporary file renamed into place; parents are made
// (fixed_push_mkdir). It replies OKAY, or FAIL with why.
func receive(r io.Reader, w *bufio.Writer, arg string) error {
	i := strings.LastIndexByte(arg, ',')
	if i < 0 {
		return syncFail(w, "SEND "+strconv.Quote(arg)+": no \",mode\"")
	}
	path := arg[:i]
	mode, err := strconv.ParseUint(arg[i+1:], 10, 32)
	if err != nil {
		return syncFail(w, "SEND "+strconv.Quote(arg)+": bad mode")
	}
	var failure error
	var f *os.File
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		failure = err
	} else if f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".adb-*"); err != nil {
		failure = err
	}
	if f != nil {
		defer func() {
			f.Close()
			os.Remove(f.Name())
		}()
	}
	// The host sends everything before it reads a reply: read it all, then answer.
	for {
		id, n, err := syncHeader(r)
		if err != nil {
			return fmt.Errorf("sync SEND %s: %w", path, err)
		}
		switch id {
		case "DATA":
			if n > maxSyncData {
				return syncFail(w, fmt.Sprintf("DATA of %d bytes, over %d", n, maxSyncData))
			}
			if failure == nil {
				if _, err := io.CopyN(f, r, int64(n)); err != nil {
					failure = err
				}
			} else if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return fmt.Errorf("sync SEND %s: %w", path, err)
			}
		case "DONE":
			if failure == nil {
				failure = finish(f, path, fs.FileMode(mode).Perm(), time.Unix(int64(n), 0))
			}
			if failure != nil {
				syncReply(w, "FAIL", []byte(failure.Error()))
			} else {
				syncReply(w, "OKAY", nil)
			}
			return nil
		default:
			return syncFail(w, "SEND "+path+": "+strconv.Quote(id)+" in the data")
		}
	}
}

func finish(f *os.File, path string, perm fs.FileMode, mtime time.Time) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(f.Name(), mtime, mtime); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
