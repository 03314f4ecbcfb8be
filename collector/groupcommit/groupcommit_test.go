package groupcommit

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestGroups: items queued while a group is applied are applied together in the next
// one, within the size bound; a group that fails is applied again item by item, so
// that only the failing item's caller sees the error.
func TestGroups(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var mu sync.Mutex
	var groups [][]int
	g := New(10, func(n int) int { return n }, func(items []int) error {
		mu.Lock()
		groups = append(groups, append([]int(nil), items...))
		first := len(groups) == 1
		mu.Unlock()
		if first {
			started <- struct{}{}
			<-release
		}
		for _, n := range items {
			if n == 3 {
				return errors.New("three")
			}
		}
		return nil
	})
	errs := make(map[int]error)
	var emu sync.Mutex
	var wg sync.WaitGroup
	do := func(n int) {
		wg.Go(func() {
			err := g.Do(n)
			emu.Lock()
			errs[n] = err
			emu.Unlock()
		})
	}
	do(1)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first item was not applied")
	}
	// These queue behind the first group, in this order: 2, 3 and 4 fit in one group
	// of 10, 7 does not. The queue has no event to await: poll it.
	for i, n := range []int{2, 3, 4, 7} {
		do(n)
		deadline := time.Now().Add(10 * time.Second)
		for {
			g.mu.Lock()
			queued := len(g.queue)
			g.mu.Unlock()
			if queued == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d items queued, want %d", queued, i+1)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	wg.Wait()
	if got := fmt.Sprint(groups); got != "[[1] [2 3 4] [2] [3] [4] [7]]" {
		t.Fatalf("groups %s, want [[1] [2 3 4] [2] [3] [4] [7]]", got)
	}
	if len(errs) != 5 {
		t.Fatalf("%d callers returned, want 5", len(errs))
	}
	for n, err := range errs {
		if (err != nil) != (n == 3) {
			t.Errorf("item %d: error %v", n, err)
		}
	}
}
