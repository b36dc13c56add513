package mux

import (
	"sync"
	"time"
)

// deadline is a net.Conn deadline in the style of net.Pipe's: a channel that
// is closed when the deadline passes. It allocates nothing until a deadline is
// set, so idle streams without deadlines pay only its zero value.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // nil: no deadline; closed: expired
}

// set arms the deadline at t (zero t disarms it). The caller must wake the
// goroutines waiting on the old channel, which may be nil.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the callback is closing it; wait so we never close twice
	}
	d.timer = nil
	closed := d.cancel != nil && isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = nil
		}
		return
	}
	if d.cancel == nil || closed {
		d.cancel = make(chan struct{})
	}
	if dur := time.Until(t); dur > 0 {
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	close(d.cancel)
}

// wait returns the channel closed at expiry, or nil (blocks forever in a
// select) when no deadline is set.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	c := d.cancel
	d.mu.Unlock()
	return c
}

func (d *deadline) expired() bool {
	c := d.wait()
	return c != nil && isClosed(c)
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
