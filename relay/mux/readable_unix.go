//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mux

import "syscall"

// peekBuf is the one byte MSG_PEEK needs; kept outside the closure so the
// wait allocates nothing per call.
type peekBuf [1]byte

// waitReadable blocks in the runtime poller until the socket has data, EOF
// or an error, without reading anything. The peek must report EAGAIN before
// we let the poller wait: the poller is edge-triggered, and only a drained
// socket is guaranteed a new edge.
func waitReadable(rc syscall.RawConn, b *peekBuf) {
	_ = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return err != syscall.EAGAIN
	})
}
