package adbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
)

// The packet ids of the shell protocol (shell_protocol.h): each packet is the id, the
// data's length (4 bytes, little-endian) and the data.
const (
	shellStdin      = 0
	shellStdout     = 1
	shellStderr     = 2
	shellExit       = 3
	shellCloseStdin = 4
	shellWindowSize = 5
)

func (s *Server) command(ctx context.Context, cmdline string) *exec.Cmd {
	sh := s.Shell
	if sh == "" {
		sh = "/bin/sh"
	}
	var cmd *exec.Cmd
	if cmdline == "" {
		cmd = exec.CommandContext(ctx, sh)
	} else {
		cmd = exec.CommandContext(ctx, sh, "-c", cmdline)
	}
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	return cmd
}

// shell runs a command for a shell service: with v2, its stdout, stderr and exit
// status as packets of the shell protocol, and stdin from them; without, its output
// as the raw stream, the stream's end its exit.
func (s *Server) shell(ctx context.Context, st *stream, cmdline string, v2 bool) error {
	cmd := s.command(ctx, cmdline)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var packets *packetWriter
	if v2 {
		packets = &packetWriter{w: st}
		cmd.Stdout = packets.channel(shellStdout)
		cmd.Stderr = packets.channel(shellStderr)
	} else {
		cmd.Stdout = st
		cmd.Stderr = st
	}
	if err := cmd.Start(); err != nil {
		msg := fmt.Sprintf("adbd: %v\n", err)
		if v2 {
			packets.packet(shellStderr, []byte(msg))
			packets.packet(shellExit, []byte{127})
		} else {
			st.Write([]byte(msg))
		}
		return nil
	}
	if v2 {
		go readStdinPackets(st, stdin)
	} else {
		go func() { io.Copy(stdin, st); stdin.Close() }()
	}
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case err != nil:
		return fmt.Errorf("%s: %w", cmdline, err)
	}
	if v2 {
		if _, err := packets.packet(shellExit, []byte{byte(code)}); err != nil {
			return fmt.Errorf("exit packet: %w", err)
		}
	}
	return nil
}

// readStdinPackets passes the host's stdin packets to the command until close-stdin
// or the stream's end; window sizes are for a pty, which this shell does not have.
func readStdinPackets(r io.Reader, stdin io.WriteCloser) {
	defer stdin.Close()
	var h [5]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(h[1:])
		if n > maxPayload {
			return
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		switch h[0] {
		case shellStdin:
			if _, err := stdin.Write(data); err != nil {
				io.Copy(io.Discard, r)
				return
			}
		case shellCloseStdin:
			stdin.Close()
		case shellWindowSize:
		}
	}
}

// packetWriter writes shell protocol packets, whole, one at a time.
type packetWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *packetWriter) packet(id byte, data []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := make([]byte, 5+len(data))
	b[0] = id
	binary.LittleEndian.PutUint32(b[1:], uint32(len(data)))
	copy(b[5:], data)
	if _, err := p.w.Write(b); err != nil {
		return 0, err
	}
	return len(data), nil
}

type channelWriter struct {
	p  *packetWriter
	id byte
}

func (c channelWriter) Write(b []byte) (int, error) { return c.p.packet(c.id, b) }

func (p *packetWriter) channel(id byte) io.Writer { return channelWriter{p: p, id: id} }
