package command

import "context"

// Due reports whether Next would hand the device a command now: one is
// pending or sent, or not-now and past its NotBefore, and not expired.
// The agent's long poll asks it before it waits (a command queued before
// the wait began must not wait for the next wake-up), and a Windows
// session before it asks for the next command.
func (s *Service) Due(ctx context.Context, deviceID string) (bool, error) {
	return s.Store.Due(ctx, deviceID, s.now())
}
