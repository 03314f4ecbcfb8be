package signals

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"strings"
	"sync"

	"amos.example/amosd/proof"
)

// cross is the working state of one Cross call.
type cross struct {
	n     int
	dev   func(int) *Summary
	th    Thresholds
	found map[int32][]Finding
}

func (x *cross) add(i int32, s Signal, format string, args ...any) {
	x.found[i] = append(x.found[i], Finding{Signal: s, Detail: fmt.Sprintf(format, args...)})
}

// Counters gathers the counters of devices' active dates, date by date, for the clone
// signal. The zero Counters is empty; a Counters is used by one goroutine at a time.
type Counters struct {
	dates   map[proof.Date]int
	buckets [][]*chunk // the active records of each date
	// A cache of dates: the one at slot date%64, and its bucket index+1 (0: none).
	slotDate [64]proof.Date
	slotIdx  [64]int
}

// chunk holds some of the active records of one date: appending to a date adds chunks
// (of 64 records, then twice as many as the last one up to maxChunk), it never copies
// the records.
type chunk struct {
	tuples []uint64 // interactive_seconds<<32 | unlocks<<16 | screen_ons
	owners []int32  // device index of each tuple, less base
	base   int32
}

const maxChunk = 4096

// Add adds the counters of the active days of device owner.
func (c *Counters) Add(owner int32, days []Day) {
	if c.dates == nil {
		c.dates = map[proof.Date]int{}
	}
	last, b := proof.Date(0), -1
	for k := range days {
		act := &days[k].Activity
		if !days[k].Active {
			continue
		}
		if act.Date != last || b < 0 {
			slot := act.Date % 64
			i := c.slotIdx[slot] - 1
			if i < 0 || c.slotDate[slot] != act.Date {
				var ok bool
				if i, ok = c.dates[act.Date]; !ok {
					i = len(c.buckets)
					c.dates[act.Date] = i
					c.buckets = append(c.buckets, nil)
				}
				c.slotDate[slot], c.slotIdx[slot] = act.Date, i+1
			}
			last, b = act.Date, i
		}
		cs := c.buckets[b]
		if n := len(cs); n == 0 || len(cs[n-1].tuples) == cap(cs[n-1].tuples) {
			size := 64
			if n > 0 {
				size = min(2*cap(cs[n-1].tuples), maxChunk)
			}
			cs = append(cs, &chunk{tuples: make([]uint64, 0, size), owners: make([]int32, 0, size)})
			c.buckets[b] = cs
		}
		ch := cs[len(cs)-1]
		ch.tuples = append(ch.tuples, uint64(act.InteractiveSeconds)<<32|uint64(act.Unlocks)<<16|uint64(act.ScreenOns))
		ch.owners = append(ch.owners, owner)
	}
}

// Rebase adds base to the device index of every owner, once all are added: for
// counters filled while the devices' place in the month was not yet known.
func (c *Counters) Rebase(base int32) {
	for _, cs := range c.buckets {
		for _, ch := range cs {
			ch.base += base
		}
	}
}

// Clones finds the devices that share the counters of their active dates with others,
// and returns their clone findings by index. The month has n devices, id(i) being the
// i-th's device_id; counters hold the counters of their active dates, each device added
// under its index to one of them.
//
// At tens of millions of phones two honest phones often report the same
// (interactive_seconds, unlocks, screen_ons) on one date, but the same pair sharing it
// on ClonePairDates dates of a month is astronomically unlikely: it is one script or one
// copied store. A group of CloneMassGroup identical tuples on one date is a script too;
// such groups are not expanded into pairs (that would be quadratic in the farm's size):
// each member gets a mass date instead. The dates are shared among GOMAXPROCS
// goroutines.
func Clones(n int, id func(i int) proof.DeviceID, counters []*Counters, th Thresholds) map[int32]Finding {
	out := map[int32]Finding{}
	byDate := map[proof.Date][]*chunk{}
	var dates []proof.Date
	for _, c := range counters {
		for date, i := range c.dates {
			if _, ok := byDate[date]; !ok {
				dates = append(dates, date)
			}
			byDate[date] = append(byDate[date], c.buckets[i]...)
		}
	}
	slices.Sort(dates)

	// What a goroutine found over its dates.
	type tally struct {
		pairs          map[uint64]int32 // lo<<32|hi device indices -> dates shared
		mass, lastMass []int32          // per device index: mass dates, date index+1 of the last one counted
	}
	tallies := make([]tally, min(runtime.GOMAXPROCS(0), len(dates)))
	next := make(chan int, len(dates))
	for di := range dates {
		next <- di
	}
	close(next)
	var wg sync.WaitGroup
	for g := range tallies {
		t := &tallies[g]
		t.pairs = map[uint64]int32{}
		wg.Go(func() {
			groups := map[uint64][]int32{} // tuple shared on the date -> its devices
			var grouped, datePairs []uint64
			var heads []int32
			for di := range next {
				chunks := byDate[dates[di]]
				// Find the shared tuples: most tuples of a date are unique.
				clear(groups)
				shared(chunks, &grouped, &heads, groups)
				if len(groups) == 0 {
					continue
				}
				for _, ch := range chunks {
					for k, tuple := range ch.tuples {
						if g, ok := groups[tuple]; ok {
							groups[tuple] = append(g, ch.base+ch.owners[k])
						}
					}
				}
				datePairs = datePairs[:0]
				for _, members := range groups {
					// A device reported twice on one date (two epochs) shares that date once.
					slices.Sort(members)
					members = slices.Compact(members)
					if len(members) >= th.CloneMassGroup {
						if t.mass == nil {
							t.mass, t.lastMass = make([]int32, n), make([]int32, n)
						}
						for _, m := range members {
							if t.lastMass[m] != int32(di+1) {
								t.lastMass[m] = int32(di + 1)
								t.mass[m]++
							}
						}
						continue
					}
					for i, lo := range members {
						for _, hi := range members[i+1:] {
							datePairs = append(datePairs, uint64(lo)<<32|uint64(hi))
						}
					}
				}
				slices.Sort(datePairs)
				for _, p := range slices.Compact(datePairs) {
					t.pairs[p]++
				}
			}
		})
	}
	wg.Wait()
	pairs := map[uint64]int32{}
	var mass []int32
	for _, t := range tallies {
		for p, c := range t.pairs {
			pairs[p] += c
		}
		if t.mass != nil && mass == nil {
			mass = make([]int32, n)
		}
		for i, m := range t.mass {
			mass[i] += m
		}
	}

	// Name the partner with the most shared dates, then the lowest device_id.
	less := func(a, b proof.DeviceID) bool { return bytes.Compare(a[:], b[:]) < 0 }
	type partner struct{ dates, dev int32 }
	best := map[int32]partner{}
	consider := func(self, other, dates int32) {
		cur, ok := best[self]
		if !ok || dates > cur.dates || dates == cur.dates && less(id(int(other)), id(int(cur.dev))) {
			best[self] = partner{dates, other}
		}
	}
	for p, c := range pairs {
		if int(c) >= th.ClonePairDates {
			consider(int32(p>>32), int32(uint32(p)), c)
			consider(int32(uint32(p)), int32(p>>32), c)
		}
	}
	massed := func(i int32) bool { return mass != nil && int(mass[i]) >= th.CloneMassDates && mass[i] > 0 }
	var flagged []int32
	for i := range best {
		flagged = append(flagged, i)
	}
	for i := range mass {
		if _, ok := best[int32(i)]; !ok && massed(int32(i)) {
			flagged = append(flagged, int32(i))
		}
	}
	for _, i := range flagged {
		var parts []string
		if p, ok := best[i]; ok {
			parts = append(parts, fmt.Sprintf("shares identical counters with device %s… on %d dates (threshold %d)",
				id(int(p.dev)).String()[:8], p.dates, th.ClonePairDates))
		}
		if massed(i) {
			parts = append(parts, fmt.Sprintf("shares identical counters with %d or more devices on %d dates (threshold %d)",
				th.CloneMassGroup, mass[i], th.CloneMassDates))
		}
		out[i] = Finding{Signal: Clone, Detail: strings.Join(parts, "; ")}
	}
	return out
}

// maxShareBits bounds the bits of a tuple's hash by which shared groups the tuples.
const maxShareBits = 18

// shared adds to groups, with no devices, every tuple found more than once in the
// chunks. It groups the tuples by their hash into *grouped (one counting pass, one
// placing pass: no sort of them all), then sorts each group, of a few tuples.
func shared(chunks []*chunk, grouped *[]uint64, heads *[]int32, groups map[uint64][]int32) {
	n := 0
	for _, ch := range chunks {
		n += len(ch.tuples)
	}
	if n < 2 {
		return
	}
	shareBits := min(maxShareBits, bits.Len(uint(n))) // groups of a few tuples
	hash := func(t uint64) uint64 { return (t * 0x9e3779b97f4a7c15) >> (64 - shareBits) }
	if cap(*heads) < 1<<shareBits+1 {
		*heads = make([]int32, 1<<shareBits+1)
	}
	at := (*heads)[:1<<shareBits+1]
	clear(at)
	for _, ch := range chunks {
		for _, t := range ch.tuples {
			at[hash(t)+1]++
		}
	}
	for h := 1; h < len(at); h++ {
		at[h] += at[h-1]
	}
	if cap(*grouped) < n {
		*grouped = make([]uint64, n)
	}
	g := (*grouped)[:n]
	for _, ch := range chunks {
		for _, t := range ch.tuples {
			h := hash(t)
			g[at[h]] = t
			at[h]++
		}
	}
	// Now group h ends at at[h], where group h+1 starts.
	start := int32(0)
	for h := range 1 << shareBits {
		end := at[h]
		if end-start > 1 {
			run := g[start:end]
			slices.Sort(run)
			for i := 1; i < len(run); i++ {
				if run[i] == run[i-1] {
					groups[run[i]] = nil
				}
			}
		}
		start = end
	}
}

// SortByTag sorts the device indices idx by the serial tag of each device, dev(i) being
// the i-th, then by index.
func SortByTag(idx []int32, dev func(i int) *Summary) {
	type keyed struct {
		prefix uint64 // the serial tag's first 8 bytes
		i      int32
	}
	keys := make([]keyed, len(idx))
	for k, i := range idx {
		keys[k] = keyed{binary.BigEndian.Uint64(dev(int(i)).SerialTag[:]), i}
	}
	// By prefix (least significant byte first), then by index: a stable radix sort of
	// keys in index order. Then the rare runs of one prefix by whole serial tag.
	if !slices.IsSortedFunc(keys, func(a, b keyed) int { return cmp.Compare(a.i, b.i) }) {
		slices.SortFunc(keys, func(a, b keyed) int { return cmp.Compare(a.i, b.i) })
	}
	buf := make([]keyed, len(keys))
	for shift := 0; shift < 64 && len(keys) > 0; shift += 8 {
		var at [256]int
		for _, k := range keys {
			at[k.prefix>>shift&0xff]++
		}
		if at[keys[0].prefix>>shift&0xff] == len(keys) {
			continue
		}
		for b, n := 0, 0; b < 256; b++ {
			at[b], n = n, n+at[b]
		}
		for _, k := range keys {
			buf[at[k.prefix>>shift&0xff]] = k
			at[k.prefix>>shift&0xff]++
		}
		keys, buf = buf, keys
	}
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && keys[hi].prefix == keys[lo].prefix {
			hi++
		}
		if hi-lo > 1 {
			slices.SortStableFunc(keys[lo:hi], func(a, b keyed) int {
				return bytes.Compare(dev(int(a.i)).SerialTag[:], dev(int(b.i)).SerialTag[:])
			})
		}
		lo = hi
	}
	for k := range keys {
		idx[k] = keys[k].i
	}
}

// manyKeys flags the device keys of a serial tag that too many keys used in the month.
func (x *cross) manyKeys(byTag []int32) {
	var keys []int32
	for lo := 0; lo < len(byTag); {
		tag := x.dev(int(byTag[lo])).SerialTag
		hi := lo + 1
		for hi < len(byTag) && x.dev(int(byTag[hi])).SerialTag == tag {
			hi++
		}
		if hi-lo >= 2 && tag != ([32]byte{}) {
			keys = keys[:0]
			for _, i := range byTag[lo:hi] {
				if x.dev(int(i)).ActiveDays > 0 {
					keys = append(keys, i)
				}
			}
			if len(keys) >= x.th.ManyKeys && len(keys) >= 2 {
				for _, i := range keys {
					x.add(i, ManyKeys, "serial tag %s… has %d device keys with an active date (threshold %d)",
						hex.EncodeToString(tag[:4]), len(keys), x.th.ManyKeys)
				}
			}
		}
		lo = hi
	}
}
