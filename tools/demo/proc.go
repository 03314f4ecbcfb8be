package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose stderr (and stdout) go to a log file and are watched
// line by line.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	w    *lineWatch
	done chan struct{}
	err  error
}

// start starts bin with args, its output appended to logPath.
func start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: f, w: newLineWatch(), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	out := io.MultiWriter(f, p.w)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	// The children die with the demo, however it ends.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.w.close()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) error {
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// waitFor waits until n lines of the output contain s.
func (p *proc) waitFor(ctx context.Context, s string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.w.wait(ctx, s, n); err != nil {
		return fmt.Errorf("%s: waiting for %q (x%d): %w (see %s)", p.name, s, n, err, p.log.Name())
	}
	return nil
}

// lineWatch keeps the lines written to it and wakes waiters.
type lineWatch struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{}
	closed  bool
}

func newLineWatch() *lineWatch { return &lineWatch{changed: make(chan struct{})} }

func (w *lineWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	if !w.closed {
		close(w.changed)
		w.changed = make(chan struct{})
	}
	return len(b), nil
}

func (w *lineWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.changed)
	}
}

func (w *lineWatch) wait(ctx context.Context, s string, n int) error {
	for {
		w.mu.Lock()
		c := 0
		for _, l := range w.lines {
			if strings.Contains(l, s) {
				c++
			}
		}
		ch, closed := w.changed, w.closed
		w.mu.Unlock()
		if c >= n {
			return nil
		}
		if closed {
			return fmt.Errorf("the process exited")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// find returns the first line that contains s, or "".
func (p *proc) find(s string) string {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	for _, l := range p.w.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
