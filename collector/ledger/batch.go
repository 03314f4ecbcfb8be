package ledger

import (
	"bytes"
	"errors"
	"slices"
	"sync"

	"amos.example/amosd/proof"
)

// DayRun is the days of one device-epoch of a month, in seq order.
type DayRun struct {
	ID    proof.DeviceID
	Epoch uint32
	Days  []Day
}

// batchSize is about how many entries a batch of the scans in batches holds, and
// batchesAhead how many batches the scan may read ahead of its workers: more than a
// page of a database's scan, so that the database reads the next page while the
// workers decode the last one.
const (
	batchSize    = 1024
	batchesAhead = 24
)

// errStopScan ends a scan whose batches failed.
var errStopScan = errors.New("ledger: scan stopped")

// rawBatch is a run of consecutive entries of a bucket, keys and values copied into one
// buffer: the scan's values need not outlive its callback.
type rawBatch struct {
	ord   int // ordinal of the batch in the scan
	first int // units (see scanBatches) before the batch
	units int // units the batch starts
	buf   []byte
	ends  []int // end of key i at ends[2i], of value i at ends[2i+1], in buf
}

func (b *rawBatch) len() int { return len(b.ends) / 2 }

func (b *rawBatch) at(i int) (k, v []byte) {
	start := 0
	if i > 0 {
		start = b.ends[2*i-1]
	}
	return b.buf[start:b.ends[2*i]], b.buf[b.ends[2*i]:b.ends[2*i+1]]
}

// scanBatches scans [from, to) of bucket b in the calling goroutine and hands the
// entries, in batches of about batchSize consecutive ones, to workers goroutines, which
// call work on each. A unit starts at an entry whose key differs from the previous one
// in unit(key) (nil: every entry is a unit); batches end only between units. work gets
// the batch's worker (0..workers-1) and how many units came before the batch.
func scanBatches(kv KV, b Bucket, from, to []byte, workers int, unit func(key []byte) []byte,
	work func(worker int, b *rawBatch) error) error {
	workers = max(workers, 1)
	todo, free := make(chan *rawBatch, batchesAhead), make(chan *rawBatch, batchesAhead+workers+1)
	for range cap(free) {
		free <- &rawBatch{}
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		failed   = make(chan struct{})
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; close(failed) })
	}
	for w := range workers {
		wg.Go(func() {
			for rb := range todo {
				select {
				case <-failed: // nothing more is worked on
				default:
					if err := work(w, rb); err != nil {
						fail(err)
					}
				}
				free <- rb
			}
		})
	}
	cur := <-free
	cur.ord, cur.first, cur.units, cur.buf, cur.ends = 0, 0, 0, cur.buf[:0], cur.ends[:0]
	var prevUnit []byte
	units := 0
	send := func() bool {
		select {
		case todo <- cur:
		case <-failed:
			return false
		}
		next := <-free
		next.ord, next.first, next.units, next.buf, next.ends = cur.ord+1, units, 0, next.buf[:0], next.ends[:0]
		cur = next
		return true
	}
	err := stream(kv, b, from, to, func(k, v []byte) error {
		newUnit := true
		if unit != nil {
			u := unit(k)
			newUnit = prevUnit == nil || !bytes.Equal(u, prevUnit)
			prevUnit = append(prevUnit[:0], u...)
		}
		if newUnit && cur.len() >= batchSize && !send() {
			return errStopScan
		}
		if newUnit {
			units++
			cur.units++
		}
		cur.buf = append(cur.buf, k...)
		cur.ends = append(cur.ends, len(cur.buf))
		cur.buf = append(cur.buf, v...)
		cur.ends = append(cur.ends, len(cur.buf))
		return nil
	})
	if err == nil && cur.len() > 0 {
		send()
	}
	close(todo)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return err
}

// MonthDayBatches is MonthDays decoded by up to workers goroutines at once. It calls fn
// from them, each call with a run of consecutive device-epochs in key order, all the
// epochs of a device in one call, and first: how many devices of the month came before
// the run. runs is valid only until fn returns.
func (t ledgerTx) MonthDayBatches(m MonthKey, workers int, fn func(first int, runs []DayRun) error) error {
	return t.MonthDayRangeBatches(m, nil, nil, workers, fn)
}

// MonthDayRangeBatches is MonthDayBatches for the device_ids in [from, to), nil meaning
// no bound; first counts the devices of the range.
func (t ledgerTx) MonthDayRangeBatches(m MonthKey, from, to []byte, workers int, fn func(first int, runs []DayRun) error) error {
	p := monthKey(m)
	lo, hi := p, prefixEnd(p)
	if from != nil {
		lo = append(bytes.Clone(p), from...)
	}
	if to != nil {
		hi = append(bytes.Clone(p), to...)
	}
	type scratch struct {
		runs []DayRun
		days []Day
	}
	scr := make([]scratch, max(workers, 1))
	return scanBatches(t.kv, bucketDays, lo, hi, workers, func(k []byte) []byte {
		if len(k) < 4+proof.HashSize {
			return k
		}
		return k[4 : 4+proof.HashSize]
	}, func(w int, rb *rawBatch) error {
		s := &scr[w]
		n := rb.len()
		s.runs = slices.Grow(s.runs[:0], n)[:n]
		total := 0
		for i := range n {
			_, v := rb.at(i)
			total += max(len(v)-1, 0) / daySize
		}
		s.days = slices.Grow(s.days[:0], total)[:0]
		for i := range n {
			k, v := rb.at(i)
			at := len(s.days)
			_, id, epoch, days, err := decodeDays(k, v, s.days[at:])
			if err != nil {
				return err
			}
			s.days = s.days[:at+len(days)]
			s.runs[i] = DayRun{ID: id, Epoch: epoch, Days: s.days[at : at+len(days) : at+len(days)]}
		}
		return fn(rb.first, s.runs)
	})
}

// DeviceBatches is Devices decoded by up to workers goroutines at once, for what claims
// read. It calls fn from them, each call with a run of consecutive devices in device_id
// order and how many devices came before it. devs, and what they hold, are valid only
// until fn returns. Their PublicKey is left zero, and what ingest checked before
// storing a device is not checked again (see decodeDeviceInto).
func (t ledgerTx) DeviceBatches(workers int, fn func(first int, devs []Device) error) error {
	return t.DeviceRangeBatches(nil, nil, workers, fn)
}

// DeviceRangeBatches is DeviceBatches for the device_ids in [from, to), nil meaning no
// bound; first counts the devices of the range.
func (t ledgerTx) DeviceRangeBatches(from, to []byte, workers int, fn func(first int, devs []Device) error) error {
	type scratch struct {
		devs  []Device
		certs []proof.Certificate
	}
	scr := make([]scratch, max(workers, 1))
	return scanBatches(t.kv, bucketDevices, from, to, workers, nil, func(w int, rb *rawBatch) error {
		n := rb.len()
		s := &scr[w]
		s.devs, s.certs = slices.Grow(s.devs[:0], n)[:n], slices.Grow(s.certs[:0], n)[:n]
		devs := s.devs
		for i := range n {
			k, v := rb.at(i)
			devs[i] = Device{}
			if err := decodeDeviceInto(&devs[i], k, v, true, &s.certs[i]); err != nil {
				return err
			}
		}
		return fn(rb.first, devs)
	})
}

// SaleBatches is Sales decoded by up to workers goroutines at once: it calls fn from
// them, each call with consecutive sales in serial_tag order and how many sales came
// before them. sales is valid only until fn returns.
func (t ledgerTx) SaleBatches(workers int, fn func(first int, sales []Sale) error) error {
	type scratch struct {
		sales []Sale
		names map[string]string // maker_ids and channels seen: a registry has few
	}
	scr := make([]scratch, max(workers, 1))
	return scanBatches(t.kv, bucketSales, nil, nil, workers, nil, func(w int, rb *rawBatch) error {
		s := &scr[w]
		if s.names == nil {
			s.names = map[string]string{}
		}
		n := rb.len()
		s.sales = slices.Grow(s.sales[:0], n)[:n]
		for i := range n {
			k, v := rb.at(i)
			sale := &s.sales[i]
			if err := decodeSaleInto(sale, k, v, s.names); err != nil {
				return err
			}
		}
		return fn(rb.first, s.sales)
	})
}
