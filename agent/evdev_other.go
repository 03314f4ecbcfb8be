//go:build !linux

package agent

import (
	"context"
	"errors"
)

// Run fails: input event devices are Linux's.
func (s *EvdevSource) Run(ctx context.Context, emit Emit) error {
	return errors.New("evdev: input event devices need Linux")
}
