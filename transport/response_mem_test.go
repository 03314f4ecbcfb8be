package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"amos.example/amosd/internal/benchline"
)

// answerHeapBudget is README.md's budget table: the heap that reading and decoding the
// largest answer Upload accepts (MaxResponseBytes) may take, the 4 MiB of heap that
// `amosd run`'s memory limit leaves over the idle daemon (cmd/amosd/run.go
// heapHeadroom): an answer never makes the daemon collect by itself, however it is
// framed and whatever it holds.
const answerHeapBudget = 4 << 20

// fullBatchIDs are the ids of a batch of the most records a request carries (256,
// docs/protocol.md section 6), all of epoch 1.
func fullBatchIDs() []RecordID {
	ids := make([]RecordID, 256)
	for i := range ids {
		ids[i] = RecordID{Epoch: 1, Seq: uint64(7 + i)}
	}
	return ids
}

// hostileAnswer is the answer of the issue that drove amosd's heap to 80 MB: a well-formed
// JSON object of exactly size bytes whose results are hundreds of thousands of empty
// objects, far more than the records sent.
func hostileAnswer(size int) []byte {
	head, tail := `{"server_time":1795500000,"results":[{}`, `]}`
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(head)
	for b.Len()+len(",{}")+len(tail) <= size {
		b.WriteString(",{}")
	}
	b.WriteString(strings.Repeat(" ", size-b.Len()-len(tail)))
	b.WriteString(tail)
	return b.Bytes()
}

// largestValidAnswer is a valid answer to ids of exactly size bytes: each result rejected
// with a reason of the longest allowed, each with an unknown field, and the rest of the
// bytes an unknown key at the top holding as many empty objects as fit (what cost the
// most to a parser that built the whole tree).
func largestValidAnswer(ids []RecordID, size int) []byte {
	reason := strings.Repeat("r", maxReasonLen)
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"server_time":1795500000,"results":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"epoch":%d,"seq":%d,"status":"rejected","reason":"%s","detail":{"a":[1,2,3],"b":"\u00e9"}}`, id.Epoch, id.Seq, reason)
	}
	b.WriteString(`],"padding":[{}`)
	const tail = `]}`
	for b.Len()+len(",{}")+len(tail) <= size {
		b.WriteString(",{}")
	}
	b.WriteString(strings.Repeat(" ", size-b.Len()-len(tail)))
	b.WriteString(tail)
	return b.Bytes()
}

// chunks is a body of unknown length (chunked, or ending with the connection) that
// arrives in reads of at most 4 KiB.
type chunks struct{ r io.Reader }

func (c chunks) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096]
	}
	return c.r.Read(p)
}

// heapUse is what reading and decoding an answer took.
type heapUse struct {
	peak   uint64 // how far the heap grew over its start, with nothing collected
	read   uint64 // bytes allocated reading the body
	decode uint64 // bytes allocated decoding it
}

// answerHeap reads body as Upload reads an answer (framed by its Content-Length, or of
// unknown length) and decodes it for ids, with the garbage collector off as `amosd run`
// runs (GOGC=off below its memory limit), and returns what that took and the error.
func answerHeap(body []byte, ids []RecordID, framed bool) (heapUse, error) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	var m0, m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m0)
	length, r := int64(len(body)), io.Reader(bytes.NewReader(body))
	if !framed {
		length, r = -1, chunks{r}
	}
	data, err := readAnswer(r, length)
	runtime.ReadMemStats(&m1)
	var out []outcome
	if err == nil {
		_, out, err = decodeResponse(data, ids)
	}
	runtime.ReadMemStats(&m2)
	runtime.KeepAlive(data)
	runtime.KeepAlive(out)
	return heapUse{peak: m2.HeapAlloc - m0.HeapAlloc, read: m1.TotalAlloc - m0.TotalAlloc, decode: m2.TotalAlloc - m1.TotalAlloc}, err
}

// TestAnswerMemoryIsBounded: the 1 MiB answer of empty results is refused as soon as
// it holds more results than records were sent, and the largest valid answer is decoded,
// each costing the decoder a few dozen KiB (the results of 256 records) and, with the
// body, less than the budget.
func TestAnswerMemoryIsBounded(t *testing.T) {
	ids := fullBatchIDs()
	for _, tc := range []struct {
		name   string
		body   []byte
		framed bool
		err    string // "" for a valid answer
	}{
		{name: "1 MiB of empty results", body: hostileAnswer(MaxResponseBytes), framed: true, err: "more than 256 results for 256 records"},
		{name: "1 MiB of empty results, chunked", body: hostileAnswer(MaxResponseBytes), err: "more than 256 results for 256 records"},
		{name: "largest valid answer", body: largestValidAnswer(ids, MaxResponseBytes), framed: true},
		{name: "largest valid answer, chunked", body: largestValidAnswer(ids, MaxResponseBytes)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.body) != MaxResponseBytes {
				t.Fatalf("the answer is %d bytes, want %d", len(tc.body), MaxResponseBytes)
			}
			use, err := answerHeap(tc.body, ids, tc.framed)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("valid answer refused: %v", err)
			case tc.err != "" && (!errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want ErrProtocol saying %q", err, tc.err)
			}
			t.Logf("peak heap %d B: reading %d B, decoding %d B", use.peak, use.read, use.decode)
			if read := uint64(MaxResponseBytes + 64<<10); tc.framed && use.read > read || !tc.framed && use.read > 2*read {
				t.Errorf("reading an answer of %d bytes (framed: %v) allocated %d bytes", MaxResponseBytes, tc.framed, use.read)
			}
			if use.decode > 96<<10 {
				t.Errorf("decoding allocated %d bytes, want at most 96 KiB", use.decode)
			}
			if use.peak > answerHeapBudget {
				t.Errorf("peak heap %d bytes over the budget of %d", use.peak, answerHeapBudget)
			}
		})
	}
}

// failAfter is a body that breaks after n bytes.
type failAfter struct{ n int }

var errBroken = errors.New("connection reset")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errBroken
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

// TestReadAnswer: bodies framed or not, up to MaxResponseBytes and one byte more, short
// and broken.
func TestReadAnswer(t *testing.T) {
	body := func(n int) io.Reader { return bytes.NewReader(bytes.Repeat([]byte{' '}, n)) }
	for _, tc := range []struct {
		name   string
		r      io.Reader
		length int64
		want   int // bytes returned
		err    error
	}{
		{"empty, framed", body(0), 0, 0, nil},
		{"empty, chunked", body(0), -1, 0, nil},
		{"small, chunked", chunks{body(1000)}, -1, 1000, nil},
		{"1 MiB, framed", body(MaxResponseBytes), MaxResponseBytes, MaxResponseBytes, nil},
		{"1 MiB, chunked", chunks{body(MaxResponseBytes)}, -1, MaxResponseBytes, nil},
		{"1 MiB and a byte, chunked", chunks{body(MaxResponseBytes + 1)}, -1, MaxResponseBytes, errAnswerTooLong},
		{"10 MiB, chunked", body(10 << 20), -1, MaxResponseBytes, errAnswerTooLong},
		{"framed, a byte short", body(99), 100, 99, io.ErrUnexpectedEOF},
		{"framed, more than its length", body(200), 100, 100, nil},
		{"broken, chunked", &failAfter{5000}, -1, 5000, errBroken},
		{"broken at 1 MiB, chunked", &failAfter{MaxResponseBytes}, -1, MaxResponseBytes, errBroken},
		{"broken, framed", &failAfter{5000}, 10000, 5000, errBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := readAnswer(tc.r, tc.length)
			if len(data) != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Errorf("%d bytes, error %v; want %d, %v", len(data), err, tc.want, tc.err)
			}
		})
	}
}

// BenchmarkBudgetAnswerHeap reports the heap that reading and decoding the largest
// answer Upload accepts takes (README.md's budget table), framed by its Content-Length
// or chunked, whichever takes more, and, unjudged, what the 1 MiB answer of empty
// results takes before it is refused: as lines for tools/benchreport.
func BenchmarkBudgetAnswerHeap(b *testing.B) {
	ids := fullBatchIDs()
	valid, hostile := largestValidAnswer(ids, MaxResponseBytes), hostileAnswer(MaxResponseBytes)
	for range b.N {
		var use [2][2]heapUse // [valid, hostile][framed, chunked]
		for i, body := range [][]byte{valid, hostile} {
			for j, framed := range []bool{true, false} {
				u, err := answerHeap(body, ids, framed)
				if (err == nil) != (i == 0) {
					b.Fatalf("answer %d, framed %v: %v", i, framed, err)
				}
				use[i][j] = u
			}
		}
		worst := func(u [2]heapUse) uint64 { return max(u[0].peak, u[1].peak) }
		note := func(what string, u [2]heapUse) string {
			return fmt.Sprintf("%s, GC off as under `amosd run`: peak heap %d B with Content-Length (reading %d B, decoding %d B), %d B chunked (reading %d B, decoding %d B)",
				what, u[0].peak, u[0].read, u[0].decode, u[1].peak, u[1].read, u[1].decode)
		}
		b.ReportMetric(float64(worst(use[0])), "peak-heap-B")
		benchline.Print("answer_heap", float64(worst(use[0])), "bytes", note("reading and decoding a valid 1 MiB answer for 256 records", use[0]))
		benchline.Print("answer_heap_hostile", float64(worst(use[1])), "bytes", note("the 1 MiB answer of empty results for 256 records, refused", use[1]))
	}
}
