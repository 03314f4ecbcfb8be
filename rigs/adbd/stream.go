package adbd

import (
	"errors"
	"io"
	"sync"
)

// errStreamClosed is what a service sees once the host has closed its stream.
var errStreamClosed = errors.New("the host closed the stream")

// stream is one open service: what the host wrote, in order, and our writes, each
// WRTE waiting for the host's OKAY as the protocol's flow control asks.
type stream struct {
	c             *conn
	local, remote uint32
	in            *queue
	okays         chan struct{}
	gone          chan struct{} // closed when the stream ends, from either side
	once          sync.Once
	wmu           sync.Mutex
}

func newStream(c *conn, local, remote uint32) *stream {
	return &stream{c: c, local: local, remote: remote, in: newQueue(), okays: make(chan struct{}, 1), gone: make(chan struct{})}
}

func (st *stream) okay() {
	select {
	case st.okays <- struct{}{}:
	default:
	}
}

// Read reads what the host wrote; io.EOF once it closed the stream.
func (st *stream) Read(b []byte) (int, error) { return st.in.Read(b) }

// Write sends b in WRTE messages no larger than the host takes, each acknowledged.
func (st *stream) Write(b []byte) (int, error) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), st.c.maxData)]
		select {
		case <-st.gone:
			return n, errStreamClosed
		default:
		}
		if err := st.c.send(packet{cmd: cmdWRTE, arg0: st.local, arg1: st.remote, data: chunk}); err != nil {
			return n, err
		}
		select {
		case <-st.okays:
		case <-st.gone:
			return n, errStreamClosed
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

func (st *stream) end() bool {
	ended := false
	st.once.Do(func() {
		ended = true
		close(st.gone)
		st.in.close()
		st.c.mu.Lock()
		delete(st.c.streams, st.local)
		st.c.mu.Unlock()
	})
	return ended
}

// closedByHost ends the stream on the host's CLSE (or the connection's end).
func (st *stream) closedByHost() { st.end() }

// close ends the stream from our side: CLSE to the host, unless it closed it first.
func (st *stream) close() {
	if st.end() {
		st.c.send(packet{cmd: cmdCLSE, arg0: st.local, arg1: st.remote})
	}
}

// queue is an unbounded pipe: the connection's reader never waits for a service.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	bufs   [][]byte
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(b []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed && len(b) > 0 {
		q.bufs = append(q.bufs, b)
		q.cond.Broadcast()
	}
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

func (q *queue) Read(b []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.bufs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.bufs) == 0 {
		return 0, io.EOF
	}
	n := copy(b, q.bufs[0])
	if n == len(q.bufs[0]) {
		q.bufs = q.bufs[1:]
	} else {
		q.bufs[0] = q.bufs[0][n:]
	}
	return n, nil
}
