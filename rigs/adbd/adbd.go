// Package adbd is adb for the test rigs: a device side over TCP (no AUTH, as a ro.adb.secure=0 factory build) with the shell (v1, v2) and sync (push) services for a firmware image without Android's adbd, and the host's real adb client on a private server.
package adbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
)

// The commands of the wire protocol (AOSP packages/modules/adb, protocol.txt): the
// four ASCII letters read as a little-endian word.
const (
	cmdCNXN = 0x4e584e43
	cmdAUTH = 0x48545541
	cmdOPEN = 0x4e45504f
	cmdOKAY = 0x59414b4f
	cmdWRTE = 0x45545257
	cmdCLSE = 0x45534c43

	// version is the protocol version this side speaks: the one from which a zero
	// data checksum is allowed (we send the sum anyway, which every version accepts).
	version = 0x01000001
	// maxPayload is the largest message payload this side accepts.
	maxPayload = 256 * 1024
)

// Features are the features the CNXN banner advertises: the shell protocol (exit
// status, stdout and stderr apart), stat_v2 (STA2/LST2) and a SEND that makes the
// parent directories, which is what adb 29's shell and push use.
var Features = []string{"shell_v2", "cmd", "stat_v2", "fixed_push_mkdir"}

// Server answers adb hosts on a listener. Its zero value is not usable: Shell is needed.
type Server struct {
	Product string   // ro.product.name, model and device of the banner ("amos_vm" if empty)
	Shell   string   // the shell that runs commands, with -c COMMAND ("/bin/sh" if empty)
	Env     []string // the environment of the commands (else this process's)
	Dir     string   // their working directory ("/" if empty)
	Log     func(format string, args ...any)
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

// Serve accepts connections until ctx ends or the listener fails; each is one host.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("adbd: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stopConn := context.AfterFunc(ctx, func() { c.Close() })
			defer stopConn()
			if err := s.serveConn(ctx, c); err != nil && ctx.Err() == nil {
				s.logf("adbd: %s: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

type packet struct {
	cmd, arg0, arg1 uint32
	data            []byte
}

func checksum(b []byte) uint32 {
	var sum uint32
	for _, c := range b {
		sum += uint32(c)
	}
	return sum
}

func readPacket(r io.Reader) (packet, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return packet{}, fmt.Errorf("message header: %w", err)
	}
	le := binary.LittleEndian
	p := packet{cmd: le.Uint32(h[0:]), arg0: le.Uint32(h[4:]), arg1: le.Uint32(h[8:])}
	n, sum, magic := le.Uint32(h[12:]), le.Uint32(h[16:]), le.Uint32(h[20:])
	if magic != p.cmd^0xffffffff {
		return packet{}, fmt.Errorf("message %#x: bad magic %#x", p.cmd, magic)
	}
	if n > maxPayload {
		return packet{}, fmt.Errorf("message %#x: %d bytes of data, over %d", p.cmd, n, maxPayload)
	}
	p.data = make([]byte, n)
	if _, err := io.ReadFull(r, p.data); err != nil {
		return packet{}, fmt.Errorf("message data: %w", err)
	}
	if sum != 0 && sum != checksum(p.data) {
		return packet{}, fmt.Errorf("message %#x: data checksum %#x, want %#x", p.cmd, sum, checksum(p.data))
	}
	return p, nil
}

func encodePacket(p packet) []byte {
	b := make([]byte, 24+len(p.data))
	le := binary.LittleEndian
	le.PutUint32(b[0:], p.cmd)
	le.PutUint32(b[4:], p.arg0)
	le.PutUint32(b[8:], p.arg1)
	le.PutUint32(b[12:], uint32(len(p.data)))
	le.PutUint32(b[16:], checksum(p.data))
	le.PutUint32(b[20:], p.cmd^0xffffffff)
	copy(b[24:], p.data)
	return b
}

// conn is one host's connection: its streams by our local id.
type conn struct {
	srv     *Server
	c       net.Conn
	wmu     sync.Mutex
	mu      sync.Mutex
	streams map[uint32]*stream
	nextID  uint32
	maxData int
}

func (c *conn) send(p packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.c.Write(encodePacket(p))
	return err
}

func (s *Server) banner() string {
	prod := s.Product
	if prod == "" {
		prod = "amos_vm"
	}
	return fmt.Sprintf("device::ro.product.name=%s;ro.product.model=%s;ro.product.device=%s;features=%s",
		prod, prod, prod, strings.Join(Features, ","))
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) error {
	c := &conn{srv: s, c: nc, streams: map[uint32]*stream{}, maxData: maxPayload}
	defer c.closeAll()
	r := bufio.NewReader(nc)
	connected := false
	for {
		p, err := readPacket(r)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch p.cmd {
		case cmdCNXN:
			if p.arg1 < uint32(c.maxData) && p.arg1 > 0 {
				c.maxData = int(p.arg1)
			}
			v := min(p.arg0, version)
			if err := c.send(packet{cmd: cmdCNXN, arg0: v, arg1: maxPayload, data: []byte(s.banner())}); err != nil {
				return fmt.Errorf("CNXN: %w", err)
			}
			connected = true
		case cmdAUTH:
			return errors.New("the host sent AUTH, which this factory build (ro.adb.secure=0) does not ask for")
		case cmdOPEN:
			if !connected {
				return errors.New("OPEN before CNXN")
			}
			c.open(ctx, p.arg0, strings.TrimRight(string(p.data), "\x00"))
		case cmdOKAY:
			if st := c.stream(p.arg1); st != nil {
				st.okay()
			}
		case cmdWRTE:
			st := c.stream(p.arg1)
			if st == nil {
				c.send(packet{cmd: cmdCLSE, arg0: 0, arg1: p.arg0})
				continue
			}
			st.in.push(p.data)
			if err := c.send(packet{cmd: cmdOKAY, arg0: st.local, arg1: st.remote}); err != nil {
				return fmt.Errorf("OKAY: %w", err)
			}
		case cmdCLSE:
			if st := c.stream(p.arg1); st != nil {
				st.closedByHost()
			}
		default:
			s.logf("adbd: ignoring message %#x", p.cmd)
		}
	}
}

func (c *conn) stream(id uint32) *stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *conn) closeAll() {
	c.mu.Lock()
	all := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		all = append(all, st)
	}
	c.mu.Unlock()
	for _, st := range all {
		st.closedByHost()
	}
}

// open starts the service a host asked for, or refuses it with CLSE.
func (c *conn) open(ctx context.Context, remote uint32, service string) {
	var run func(ctx context.Context, st *stream) error
	switch {
	case service == "sync:":
		run = c.srv.sync
	case strings.HasPrefix(service, "shell"):
		opts, cmd, ok := strings.Cut(strings.TrimPrefix(service, "shell"), ":")
		if !ok {
			break
		}
		v2 := false
		for _, o := range strings.Split(opts, ",") {
			if o == "v2" {
				v2 = true
			}
		}
		run = func(ctx context.Context, st *stream) error { return c.srv.shell(ctx, st, cmd, v2) }
	}
	if run == nil {
		c.srv.logf("adbd: refusing service %q", service)
		c.send(packet{cmd: cmdCLSE, arg0: 0, arg1: remote})
		return
	}
	c.mu.Lock()
	c.nextID++
	st := newStream(c, c.nextID, remote)
	c.streams[st.local] = st
	c.mu.Unlock()
	if err := c.send(packet{cmd: cmdOKAY, arg0: st.local, arg1: remote}); err != nil {
		st.closedByHost()
		return
	}
	go func() {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-st.gone:
				cancel()
			case <-sctx.Done():
			}
		}()
		if err := run(sctx, st); err != nil && !errors.Is(err, errStreamClosed) {
			c.srv.logf("adbd: %s: %v", service, err)
		}
		st.close()
	}()
}
