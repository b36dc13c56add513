package command

import "context"

// Due reports whether Next would hand the device a command now: one is
// pending or sent, or not-now and past its NotBefore, and not expired.
// The agent's long poll asks it before it waits (a command queued before
// the wait began must not wait for the next wake-up).
func (s *Service) Due(ctx context.Context, deviceID string) (bool, error) {
	now := s.now()
	q := Query{DeviceID: deviceID, Open: true, Limit: MaxPage}
	for {
		cs, err := s.Store.ListCommands(ctx, q)
		if err != nil {
			return false, err
		}
		for _, c := range cs {
			if !c.ExpiresAt.After(now) {
				continue
			}
			if c.Status != StatusNotNow || c.NotBefore == nil || !c.NotBefore.After(now) {
				return true, nil
			}
		}
		if len(cs) < q.Limit {
			return false, nil
		}
		q.After = cs[len(cs)-1].ID
	}
}
