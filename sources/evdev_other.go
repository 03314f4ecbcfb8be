//go:build !linux

package sources

import (
	"context"
	"errors"
)

// Run fails: input event devices are Linux's.
func (s *EvdevSource) Run(ctx context.Context, emit Emit) error {
	return errors.New("evdev: input event devices need Linux")
}
