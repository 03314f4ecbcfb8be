// Package groupcommit lets the callers that wait for one resource at the same time
// share one use of it (one ledger transaction, one fsync).
package groupcommit

import (
	"slices"
	"sync"
)

// Group runs the items its callers bring in groups: the first waiter leads, takes
// every item queued by then (up to a total size), and applies them together while the
// next callers prepare theirs.
type Group[T any] struct {
	maxSize int
	size    func(T) int
	apply   func([]T) error

	mu    sync.Mutex
	cond  *sync.Cond
	queue []*waiter[T]
	busy  bool
}

type waiter[T any] struct {
	item     T
	err      error
	finished bool // guarded by Group.mu
}

// New returns a Group that applies queued items with apply, at most maxSize of them
// by size in one group (an item larger than that alone).
func New[T any](maxSize int, size func(T) int, apply func([]T) error) *Group[T] {
	g := &Group[T]{maxSize: maxSize, size: size, apply: apply}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Do applies item, alone or in one group with items of other callers, and returns its
// error. When a group fails, each of its items is applied again on its own, so that
// one item's failure does not fail the others.
func (g *Group[T]) Do(item T) error {
	w := &waiter[T]{item: item}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queue = append(g.queue, w)
	for !w.finished {
		if g.busy {
			g.cond.Wait()
			continue
		}
		// Lead: apply the group at the head of the queue, which may not hold w when
		// the items queued before it fill a group; then lead again or wait.
		n, size := 0, 0
		for n < len(g.queue) && (n == 0 || size+g.size(g.queue[n].item) <= g.maxSize) {
			size += g.size(g.queue[n].item)
			n++
		}
		group := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.busy = true
		g.mu.Unlock()
		g.run(group)
		g.mu.Lock()
		for _, w := range group {
			w.finished = true
		}
		g.busy = false
		g.cond.Broadcast()
	}
	return w.err
}

// run applies a group, then each of its items on its own if the group failed.
func (g *Group[T]) run(group []*waiter[T]) {
	items := make([]T, len(group))
	for i, w := range group {
		items[i] = w.item
	}
	err := g.apply(items)
	for _, w := range group {
		switch {
		case err == nil || len(group) == 1:
			w.err = err
		default:
			w.err = g.apply([]T{w.item})
		}
	}
}
