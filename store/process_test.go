package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/rigs/testenv"
)

// The test binary doubles as the child processes of these tests.
const (
	childEnv    = "STORE_TEST_CHILD"
	childDirEnv = "STORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "open":
		os.Exit(childOpen(os.Getenv(childDirEnv)))
	case "crash":
		childCrash(os.Getenv(childDirEnv))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", childEnv, os.Getenv(childEnv))
		os.Exit(2)
	}
}

// Exit codes of the "open" child.
const (
	childOpened = 0
	childInUse  = 3
	childFailed = 4
)

// childOpen opens the store in dir for writing, then read-only, and reports how.
func childOpen(dir string) int {
	start := time.Now()
	s, err := Open(Options{Dir: dir, LockTimeout: 300 * time.Millisecond})
	if err == nil {
		s.Close()
		return childOpened
	}
	fmt.Printf("open after %v: %v\n", time.Since(start).Round(time.Millisecond), err)
	if errors.Is(err, ErrInUse) {
		if _, err := OpenReadOnly(dir); !errors.Is(err, ErrInUse) {
			fmt.Printf("read-only open: %v, want ErrInUse\n", err)
			return childFailed
		}
		return childInUse
	}
	return childFailed
}

// child runs this test binary as a child process in mode, through QEMU if the suite
// runs emulated.
func child(t *testing.T, ctx context.Context, bin, mode, dir string) *exec.Cmd {
	t.Helper()
	cmd := testenv.Command(ctx, bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir)
	return cmd
}

func self(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestSecondProcessGetsInUse(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := child(t, ctx, self(t), "open", dir)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != childInUse {
		t.Fatalf("second process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("message does not say in use: %s", out)
	}
	t.Logf("second process refused after %v: %s", time.Since(start).Round(time.Millisecond), bytes.TrimSpace(out))
	// Once the holder closes, the next process opens it.
	s.Close()
	if out, err := child(t, ctx, self(t), "open", dir).CombinedOutput(); err != nil {
		t.Fatalf("after close: %v\n%s", err, out)
	}
}

func TestUnwritableDataDir(t *testing.T) {
	if os.Geteuid() != 0 {
		// Not root: the mode bits bind this process itself.
		dir := filepath.Join(t.TempDir(), "data")
		os.Mkdir(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		_, err := Open(Options{Dir: dir})
		if err == nil || errors.Is(err, ErrCorrupt) || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("open in a read-only dir: %v, want a permission error", err)
		}
		return
	}
	// Root ignores mode bits: run the opener as nobody (uid 65534), from a copy of
	// this binary that nobody may execute.
	base := testenv.SharedDir(t)
	bin := filepath.Join(base, "store.test")
	testenv.CopyFile(t, self(t), bin, 0o755)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"new store in a read-only dir", func(t *testing.T, dir string) {}},
		{"existing store not writable", func(t *testing.T, dir string) { populated(t, dir, 3) }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			before, _ := os.ReadDir(dir)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := child(t, ctx, bin, "open", dir)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != childFailed {
				t.Fatalf("open as nobody: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), dir) {
				t.Fatalf("message does not name the path and the cause: %s", out)
			}
			after, _ := os.ReadDir(dir)
			if len(after) != len(before) {
				t.Fatalf("files changed: %v -> %v", before, after)
			}
			t.Logf("refused: %s", bytes.TrimSpace(out))
		})
	}
}

// childCrash mints and acknowledges records as fast as it can, reporting each success
// on fd 3, until it is killed.
func childCrash(dir string) {
	report := bufio.NewWriterSize(os.NewFile(3, "report"), 64)
	say := func(format string, args ...any) {
		fmt.Fprintf(report, format+"\n", args...)
		report.Flush()
	}
	s, err := Open(Options{Dir: dir, LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c := newChainNoT("crash")
	if h, ok, err := s.Head(); err != nil {
		panic(err)
	} else if ok {
		c.resume(h)
	} else {
		if _, err := s.Mint(c.genesis(), nil); err != nil {
			panic(err)
		}
		say("M 1")
	}
	say("ready")
	for i := 0; ; i++ {
		rec := c.day()
		if _, err := s.Mint(rec, &Tally{Date: c.date, InteractiveSeconds: uint32(i % 100), ActiveHours: 1}); err != nil {
			panic(err)
		}
		say("M %d", c.seq)
		switch {
		case i%7 == 6:
			items, err := s.Peek(5, 64<<10)
			if err != nil {
				panic(err)
			}
			say("A- %s", seqList(items))
			if _, err := s.Ack(ids(items)...); err != nil {
				panic(err)
			}
			say("A+ %s", seqList(items))
		case i%29 == 28:
			items, err := s.Peek(1, 64<<10)
			if err != nil {
				panic(err)
			}
			say("D- %s", seqList(items))
			if _, err := s.Settle(Settlement{Dead: []Refusal{{items[0].ID, "bad_signature"}}}); err != nil {
				panic(err)
			}
			say("D+ %s", seqList(items))
		}
	}
}

func seqList(items []Item) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(it.ID.Seq, 10))
	}
	return b.String()
}

// crashLedger is what the parent learned from the child's reports.
type crashLedger struct {
	minted    map[uint64]bool
	maxMinted uint64
	ackTried  map[uint64]bool // acks begun: done or not
	ackDone   map[uint64]bool
	deadTried map[uint64]bool
	deadDone  map[uint64]bool
}

func (l *crashLedger) read(t *testing.T, line string) {
	kind, arg, _ := strings.Cut(line, " ")
	var seqs []uint64
	for _, f := range strings.Split(arg, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("bad report line %q", line)
		}
		seqs = append(seqs, n)
	}
	for _, n := range seqs {
		switch kind {
		case "M":
			l.minted[n] = true
			l.maxMinted = max(l.maxMinted, n)
		case "A-":
			l.ackTried[n] = true
		case "A+":
			l.ackDone[n] = true
		case "D-":
			l.deadTried[n] = true
		case "D+":
			l.deadDone[n] = true
		}
	}
}

func TestCrashByKill(t *testing.T) {
	kills := 200
	maxDelay := 15 * time.Millisecond
	if len(testenv.Emulator()) > 0 {
		kills, maxDelay = 50, 150*time.Millisecond // emulated: slower children, fewer kills
	}
	if testing.Short() {
		kills = 20
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	bin := self(t)
	l := &crashLedger{minted: map[uint64]bool{}, ackTried: map[uint64]bool{}, ackDone: map[uint64]bool{},
		deadTried: map[uint64]bool{}, deadDone: map[uint64]bool{}}
	deadline := time.Now().Add(10 * time.Minute)
	for i := range kills {
		if time.Now().After(deadline) {
			t.Fatalf("only %d kills in 10 minutes", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := child(t, ctx, bin, "crash", dir)
		cmd.ExtraFiles = []*os.File{pw}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		ready := false
		for !ready {
			select {
			case line, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("kill %d: child ended before ready: %s", i, stderr.String())
				}
				l.read(t, line)
				ready = line == "ready"
			case <-ctx.Done():
				t.Fatalf("kill %d: child not ready in time: %s", i, stderr.String())
			}
		}
		// Kill at a random moment of its work (the delay is the point, not a sync).
		time.Sleep(time.Duration(rng.Int64N(int64(maxDelay))))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		for line := range lines {
			l.read(t, line)
		}
		pr.Close()
		cancel()
		if strings.Contains(stderr.String(), "panic") {
			t.Fatalf("kill %d: child panicked:\n%s", i, stderr.String())
		}
		checkAfterCrash(t, i, dir, l)
	}
	t.Logf("%d kills; %d records minted, %d acknowledged, %d dead-lettered", kills, len(l.minted), len(l.ackDone), len(l.deadDone))
}

// checkAfterCrash reopens the store after a kill and checks it against the ledger.
func checkAfterCrash(t *testing.T, i int, dir string, l *crashLedger) {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", i, err)
	}
	defer s.Close()
	if s.Recovered() != nil {
		t.Fatalf("kill %d: the store was corrupt after a kill: %+v", i, s.Recovered())
	}
	h, ok, err := s.Head()
	if !ok || err != nil {
		t.Fatalf("kill %d: no head: %v", i, err)
	}
	// The head is the last record minted: reported, or committed just before the kill.
	if h.Seq != l.maxMinted && h.Seq != l.maxMinted+1 {
		t.Fatalf("kill %d: head seq %d, last reported mint %d", i, h.Seq, l.maxMinted)
	}
	items, err := s.Peek(1<<30, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.DeadLetters(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	where := map[uint64]string{}
	for _, it := range items {
		if where[it.ID.Seq] != "" {
			t.Fatalf("kill %d: seq %d twice", i, it.ID.Seq)
		}
		where[it.ID.Seq] = "queue"
	}
	if n := len(items); n > 0 && items[n-1].ID.Seq != h.Seq {
		t.Fatalf("kill %d: last queued seq %d, head %d", i, items[n-1].ID.Seq, h.Seq)
	}
	for j := 1; j < len(items); j++ {
		if items[j].ID.Seq != items[j-1].ID.Seq+1 {
			t.Fatalf("kill %d: queue gap between seq %d and %d", i, items[j-1].ID.Seq, items[j].ID.Seq)
		}
	}
	for _, d := range dead {
		seq := recordID(d.Record).Seq
		if where[seq] != "" {
			t.Fatalf("kill %d: seq %d both queued and dead-lettered", i, seq)
		}
		where[seq] = "dead"
		if !l.deadTried[seq] {
			t.Fatalf("kill %d: seq %d dead-lettered without being asked", i, seq)
		}
	}
	for seq := uint64(1); seq <= h.Seq; seq++ {
		switch where[seq] {
		case "":
			if !l.ackTried[seq] {
				t.Fatalf("kill %d: seq %d is gone but was never acknowledged", i, seq)
			}
		case "queue":
			if l.ackDone[seq] || l.deadDone[seq] {
				t.Fatalf("kill %d: seq %d still queued after its ack or dead-letter returned", i, seq)
			}
		}
	}
	for seq := range l.minted {
		if seq > h.Seq {
			t.Fatalf("kill %d: minted seq %d is beyond the head %d", i, seq, h.Seq)
		}
	}
	// A mint committed just before the kill is known now: the next child continues
	// from it, and the head may then move one past it again.
	l.minted[h.Seq] = true
	l.maxMinted = h.Seq
}
