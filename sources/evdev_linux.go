package sources

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inputEvent is the kernel's struct input_event (linux/input.h):
//
//	struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; };
//
// The timeval has the native long width, so a record is 16 bytes on 32-bit arm and 24
// on arm64 and amd64. Only Type and Code are ever looked at, and only to classify.
type inputEvent struct {
	Time  unix.Timeval
	Type  uint16
	Code  uint16
	Value int32
}

// Layout of inputEvent, derived from the struct rather than written down.
const (
	inputEventSize = int(unsafe.Sizeof(inputEvent{}))
	inputTypeOff   = int(unsafe.Offsetof(inputEvent{}.Type))
	inputCodeOff   = int(unsafe.Offsetof(inputEvent{}.Code))
)

// evdevReadRecords is how many records one read asks for.
const evdevReadRecords = 64

// Epoll keys of the run's own descriptors; devices get keys from evdevFirstDevKey on.
// Keys, not descriptor numbers, identify devices in epoll, so that a stale readiness
// of a closed device can never be taken for a new device that reuses its number.
const (
	evdevKeyWake   uint32 = iota // the eventfd written when ctx is done
	evdevKeyTimer                // the timerfd of the permission retries
	evdevKeyNotify               // the inotify descriptor watching the glob's directory
	evdevFirstDevKey
)

// evdevDirMask is what the glob's directory is watched for.
const evdevDirMask = unix.IN_CREATE | unix.IN_ATTRIB | unix.IN_MOVED_TO |
	unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_ONLYDIR

// evdevDevice is one open input device.
type evdevDevice struct {
	path string
	fd   int
	key  uint32
	buf  []byte // records read; a partial record is kept at the start for the next read
	part int    // bytes of the partial record at the start of buf
}

// evdevRetry is a pending retry of a device that could not be opened for lack of
// permission.
type evdevRetry struct {
	attempt int       // index in retryDelays of the wait that is running
	due     time.Time // when to try again (monotonic)
}

// evdevRun is the state of one Run: everything is touched by the Run goroutine only.
type evdevRun struct {
	src  *EvdevSource
	emit Emit

	dir     string // the glob's directory, watched with inotify
	pattern string // the glob's last element, matched against names in dir

	epfd  int // the epoll set: every descriptor below is in it
	wake  int // eventfd, written when ctx is done
	timer int // timerfd (CLOCK_MONOTONIC), armed only while retries are pending
	ino   int // inotify

	nextKey  uint32
	byKey    map[uint32]*evdevDevice
	byPath   map[string]*evdevDevice
	retries  map[string]*evdevRetry
	gaveUp   map[string]bool // paths that failed to open and were logged once
	coalesce inputCoalescer
}

// Run reads the devices matching the glob and emits EventAvailable (CapInput) when the
// first one is open, EventInput at most once per second while the owner uses the phone,
// and EventUnavailable (CapInput) when the last one is gone. It blocks until ctx is
// done and then returns nil, having closed every descriptor it opened. It returns an
// error only if the glob is malformed or epoll, eventfd, timerfd or inotify cannot be
// set up. Devices that cannot be opened or that go away are logged and skipped.
// emit is called from the goroutine that called Run only.
func (s *EvdevSource) Run(ctx context.Context, emit Emit) error {
	if _, err := filepath.Match(s.glob, ""); err != nil {
		return fmt.Errorf("evdev: glob %q: %w", s.glob, err)
	}
	r := &evdevRun{
		src:      s,
		emit:     emit,
		dir:      filepath.Dir(s.glob),
		pattern:  filepath.Base(s.glob),
		epfd:     -1,
		wake:     -1,
		timer:    -1,
		ino:      -1,
		nextKey:  evdevFirstDevKey,
		byKey:    make(map[uint32]*evdevDevice),
		byPath:   make(map[string]*evdevDevice),
		retries:  make(map[string]*evdevRetry),
		gaveUp:   make(map[string]bool),
		coalesce: inputCoalescer{window: s.coalesce},
	}
	defer r.close()
	if err := r.setup(); err != nil {
		return err
	}

	// Cancellation wakes epoll_wait through the eventfd. The write must not race with
	// close, so Run waits for the write before closing anything.
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(r.wake, one[:]) // EAGAIN only if already written: awake anyway
	})
	defer func() {
		if !stop() {
			<-woken
		}
	}()

	if ctx.Err() != nil {
		return nil
	}
	if r.watch() {
		r.scan(true)
	}
	return r.loop(ctx)
}

// setup creates the epoll set with the eventfd, the timerfd and inotify in it.
func (r *evdevRun) setup() error {
	var err error
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("evdev: epoll_create1: %w", err)
	}
	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("evdev: eventfd: %w", err)
	}
	if r.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		return fmt.Errorf("evdev: timerfd_create: %w", err)
	}
	if r.ino, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err != nil {
		return fmt.Errorf("evdev: inotify_init1: %w", err)
	}
	for _, fd := range []struct {
		fd  int
		key uint32
	}{{r.wake, evdevKeyWake}, {r.timer, evdevKeyTimer}, {r.ino, evdevKeyNotify}} {
		if err := r.add(fd.fd, fd.key); err != nil {
			return fmt.Errorf("evdev: epoll_ctl: %w", err)
		}
	}
	return nil
}

// add puts fd in the epoll set under key, level-triggered for reading (EPOLLHUP and
// EPOLLERR are always reported).
func (r *evdevRun) add(fd int, key uint32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(key)}
	return unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// watch watches the glob's directory for devices that come and go. Without it the
// devices present now are still read. It reports false if the directory does not
// exist: there are no devices, and Run just waits for ctx.
func (r *evdevRun) watch() bool {
	if strings.ContainsAny(r.dir, `*?[\`) {
		r.src.logf("evdev: %s: a pattern in the directory; devices added later will not be seen", r.src.glob)
		return true
	}
	if _, err := unix.InotifyAddWatch(r.ino, r.dir, evdevDirMask); err != nil {
		if errors.Is(err, unix.ENOENT) {
			r.src.logf("evdev: %s does not exist: no input devices", r.dir)
			return false
		}
		r.src.logf("evdev: cannot watch %s: %v; devices added later will not be seen", r.dir, err)
	}
	return true
}

// scan opens every device matching the glob that is not open yet. At start a permission
// error is logged once for all devices: it is the daemon's lack of rights, which an
// IN_ATTRIB may still lift. After an inotify overflow it is left to the retries.
func (r *evdevRun) scan(start bool) {
	paths, _ := filepath.Glob(r.src.glob) // the pattern was checked in Run
	denied, first := 0, error(nil)
	for _, path := range paths {
		err := r.open(path)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
		case start && isPermission(err):
			denied++
			if first == nil {
				first = err
			}
			r.gaveUp[path] = true
		case isPermission(err):
			r.scheduleRetry(path)
		default:
			r.giveUp(path, err)
		}
	}
	if denied > 0 {
		r.src.logf("evdev: cannot open %d of %d input devices: %v", denied, len(paths), first)
	}
	if start {
		r.src.logf("evdev: reading %d of %d input devices matching %s", len(r.byPath), len(paths), r.src.glob)
	}
}

// isPermission reports whether err is an open's lack of permission.
func isPermission(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// open opens the device at path and adds it to the epoll set, unless it is open
// already. The first device open makes the source available.
func (r *evdevRun) open(path string) error {
	if r.byPath[path] != nil {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	d := &evdevDevice{path: path, fd: fd, key: r.nextKey, buf: make([]byte, evdevReadRecords*inputEventSize)}
	if err := r.add(fd, d.key); err != nil {
		unix.Close(fd)
		return fmt.Errorf("epoll_ctl %s: %w", path, err)
	}
	r.nextKey++
	r.byKey[d.key] = d
	r.byPath[path] = d
	delete(r.retries, path)
	delete(r.gaveUp, path)
	if len(r.byPath) == 1 {
		r.emit(Event{Source: evdevSourceName, Kind: EventAvailable, Caps: CapInput})
	}
	return nil
}

// drop closes a device, logging why in one line (nothing if why is empty). Closing the
// last device makes the source unavailable.
func (r *evdevRun) drop(d *evdevDevice, why string) {
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, d.fd, nil)
	unix.Close(d.fd)
	delete(r.byKey, d.key)
	delete(r.byPath, d.path)
	if why != "" {
		r.src.logf("evdev: %s %s", d.path, why)
	}
	if len(r.byPath) == 0 {
		r.emit(Event{Source: evdevSourceName, Kind: EventUnavailable, Caps: CapInput})
	}
}

// loop waits for the epoll set with no timeout and serves what is ready, until ctx is
// done.
func (r *evdevRun) loop(ctx context.Context) error {
	events := make([]unix.EpollEvent, 16)
	for {
		n, err := unix.EpollWait(r.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("evdev: epoll_wait: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		for _, ev := range events[:n] {
			switch key := uint32(ev.Fd); key {
			case evdevKeyWake:
				// Only ctx writes the eventfd; ctx.Err above has seen it done.
			case evdevKeyTimer:
				r.retryDue()
			case evdevKeyNotify:
				r.dirChanged()
			default:
				if d := r.byKey[key]; d != nil {
					r.serve(d, ev.Events)
				}
			}
		}
	}
}

// serve reads what a ready device has and drops it when it is gone.
func (r *evdevRun) serve(d *evdevDevice, ready uint32) {
	input, err := d.read()
	if input && r.coalesce.admit(time.Now()) {
		r.emit(Event{Source: evdevSourceName, Kind: EventInput})
	}
	switch {
	case errors.Is(err, unix.ENODEV):
		r.drop(d, "removed")
	case errors.Is(err, io.EOF):
		r.drop(d, "hung up")
	case err != nil:
		r.drop(d, fmt.Sprintf("closed: %v", err))
	case ready&(unix.EPOLLHUP|unix.EPOLLERR) != 0:
		r.drop(d, "hung up")
	}
}

// read reads the device until it has nothing more and reports whether any complete
// record was input. A record split across reads is completed by the next one. err is
// nil when the device has nothing more to read now, else the reason to drop it.
func (d *evdevDevice) read() (input bool, err error) {
	for {
		n, err := unix.Read(d.fd, d.buf[d.part:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return input, nil
		case err != nil:
			return input, fmt.Errorf("read: %w", err)
		case n == 0:
			return input, io.EOF // a FIFO whose writers are gone
		}
		have := d.part + n
		whole := have - have%inputEventSize
		if containsInput(d.buf[:whole]) {
			input = true
		}
		d.part = copy(d.buf, d.buf[whole:have])
	}
}

// containsInput reports whether any of the whole records in b is input. Only the type
// and code of each record are looked at.
func containsInput(b []byte) bool {
	for off := 0; off+inputEventSize <= len(b); off += inputEventSize {
		typ := binary.NativeEndian.Uint16(b[off+inputTypeOff:])
		code := binary.NativeEndian.Uint16(b[off+inputCodeOff:])
		if isInput(typ, code) {
			return true
		}
	}
	return false
}

// dirChanged handles what inotify reports of the glob's directory.
func (r *evdevRun) dirChanged() {
	var buf [4096]byte // room for many events; one has at most NAME_MAX+1 name bytes
	for {
		n, err := unix.Read(r.ino, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return // EAGAIN: all read
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			size := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+unix.SizeofInotifyEvent : min(off+unix.SizeofInotifyEvent+size, n)]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off += unix.SizeofInotifyEvent + size
			r.dirEvent(mask, string(name))
		}
	}
}

// dirEvent handles one inotify event of the glob's directory.
func (r *evdevRun) dirEvent(mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		r.scan(false) // events were lost: whatever appeared meanwhile is still there
		return
	}
	if mask&unix.IN_IGNORED != 0 {
		r.src.logf("evdev: %s is gone; devices added later will not be seen", r.dir)
		return
	}
	if mask&unix.IN_ISDIR != 0 || name == "" {
		return // a subdirectory, or the directory itself
	}
	if ok, _ := filepath.Match(r.pattern, name); !ok {
		return
	}
	path := filepath.Join(r.dir, name)
	switch {
	case mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		delete(r.retries, path)
		delete(r.gaveUp, path)
		if d := r.byPath[path]; d != nil {
			r.drop(d, "removed")
		}
		r.armTimer()
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		delete(r.gaveUp, path)
		if err := r.open(path); err != nil && isPermission(err) {
			r.scheduleRetry(path) // the mode is set a moment later
		} else if err != nil && !errors.Is(err, unix.ENOENT) {
			r.giveUp(path, err)
		}
	case mask&unix.IN_ATTRIB != 0:
		if r.byPath[path] != nil {
			return
		}
		err := r.open(path)
		switch {
		case err == nil:
			r.armTimer() // its retry, if any, is done
		case r.retries[path] != nil || r.gaveUp[path] || errors.Is(err, unix.ENOENT):
			// The retries go on, or the failure was logged already.
		default:
			r.giveUp(path, err)
		}
	}
}

// scheduleRetry starts the retries of a device that could not be opened for lack of
// permission, unless they run already.
func (r *evdevRun) scheduleRetry(path string) {
	if r.retries[path] != nil {
		return
	}
	if len(r.src.retryDelays) == 0 {
		r.giveUp(path, fmt.Errorf("open %s: %w", path, unix.EACCES))
		return
	}
	r.retries[path] = &evdevRetry{due: time.Now().Add(r.src.retryDelays[0])}
	r.armTimer()
}

// giveUp logs once that a device cannot be opened.
func (r *evdevRun) giveUp(path string, err error) {
	delete(r.retries, path)
	if !r.gaveUp[path] {
		r.gaveUp[path] = true
		r.src.logf("evdev: giving up on %s: %v", path, err)
	}
}

// retryDue retries the devices whose retry is due.
func (r *evdevRun) retryDue() {
	var expirations [8]byte
	_, _ = unix.Read(r.timer, expirations[:]) // EAGAIN if re-armed meanwhile
	now := time.Now()
	for path, rt := range r.retries {
		if rt.due.After(now) {
			continue
		}
		err := r.open(path)
		switch {
		case err == nil:
		case errors.Is(err, unix.ENOENT):
			delete(r.retries, path)
		case isPermission(err) && rt.attempt+1 < len(r.src.retryDelays):
			rt.attempt++
			rt.due = now.Add(r.src.retryDelays[rt.attempt])
		default:
			r.giveUp(path, err)
		}
	}
	r.armTimer()
}

// armTimer arms the timerfd once for the earliest pending retry, or disarms it.
func (r *evdevRun) armTimer() {
	var next time.Time
	for _, rt := range r.retries {
		if next.IsZero() || rt.due.Before(next) {
			next = rt.due
		}
	}
	var spec unix.ItimerSpec // all zero: disarmed
	if !next.IsZero() {
		spec.Value = unix.NsecToTimespec(int64(max(time.Until(next), time.Microsecond)))
	}
	if err := unix.TimerfdSettime(r.timer, 0, &spec, nil); err != nil {
		r.src.logf("evdev: timerfd_settime: %v", err)
	}
}

// close closes every descriptor of the run.
func (r *evdevRun) close() {
	for _, d := range r.byKey {
		unix.Close(d.fd)
	}
	clear(r.byKey)
	clear(r.byPath)
	for _, fd := range []int{r.ino, r.timer, r.wake, r.epfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
