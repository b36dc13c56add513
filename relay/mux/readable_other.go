//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package mux

import "syscall"

type peekBuf [1]byte

// waitReadable is a no-op where we have no MSG_PEEK: ReadFrom then holds its
// pooled buffer while r.Read blocks.
func waitReadable(syscall.RawConn, *peekBuf) {}
