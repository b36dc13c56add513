package mux

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// frame encodes one raw frame; payload may be shorter than length to test
// that the session dies before reading it.
func frame(version uint8, typ FrameType, id, length uint32, payload []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	encodeHeader(b, header{version: version, typ: typ, streamID: id, length: length})
	return append(b, payload...)
}

func data(id uint32, payload []byte) []byte {
	return frame(Version, TypeData, id, uint32(len(payload)), payload)
}

func open(id uint32, meta []byte) []byte {
	return frame(Version, TypeOpen, id, uint32(len(meta)), meta)
}

func cat(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

// rawServer feeds input into a Server session as a client peer that then
// half-closes its end, and returns the session once it died. The peer
// drains whatever the server writes and accepted streams are read, so
// nothing but the input decides how the session ends (EOF if the input was
// valid). The pipe has no delay; CloseWrite keeps the server's own writes
// from failing first.
func rawServer(t testing.TB, cfg *Config, input []byte, readStreams bool) *Session {
	t.Helper()
	peer, conn := newDelayPipe(0, 64<<20)
	s := Server(conn, cfg)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(io.Discard, peer)
	}()
	go func() {
		defer wg.Done()
		for {
			st, err := s.Accept(context.Background())
			if err != nil {
				return
			}
			if !readStreams {
				continue // a stalled reader: its window is never credited
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, st)
			}()
		}
	}()
	_, _ = peer.Write(input) // fails once the session has closed the pipe
	_ = peer.CloseWrite()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("session still alive after input; err %v", s.Err())
	}
	_ = peer.Close()
	wg.Wait()
	return s
}

func TestBadInputKillsSession(t *testing.T) {
	small := &Config{StreamWindow: InitialStreamWindow}
	full := make([]byte, MaxFramePayload)
	tests := []struct {
		name   string
		cfg    *Config
		input  []byte
		reason string // substring of the ProtocolError's reason; "" = not a ProtocolError
		want   error  // errors.Is target when reason is ""
		noRead bool   // accepted streams are not read
	}{
		{name: "fail/bad-version", input: frame(2, TypePing, 0, 0, nil), reason: "unsupported version 2"},
		{name: "fail/unknown-type", input: frame(Version, 9, 0, 0, nil), reason: "unknown frame type"},
		{name: "fail/data-oversized", input: cat(open(1, nil), frame(Version, TypeData, 1, MaxFramePayload+1, nil)), reason: "> MaxFramePayload"},
		{name: "fail/data-oversized-4GiB", input: cat(open(1, nil), frame(Version, TypeData, 1, 0xffffffff, nil)), reason: "> MaxFramePayload"},
		{name: "fail/data-beyond-window", cfg: small, input: cat(open(1, nil), data(1, full), data(1, full), data(1, full), data(1, full), data(1, []byte{1})), reason: "beyond the receive window", noRead: true},
		{name: "fail/data-unknown-stream", input: data(5, []byte("x")), reason: "unknown stream"},
		{name: "fail/data-on-stream-zero", input: data(0, []byte("x")), reason: "stream 0"},
		{name: "fail/data-after-close", input: cat(open(1, nil), frame(Version, TypeClose, 1, 0, nil), data(1, []byte("x"))), reason: "after Close"},
		{name: "fail/open-meta-too-big", input: frame(Version, TypeOpen, 1, MaxOpenMeta+1, nil), reason: "MaxOpenMeta"},
		{name: "fail/open-wrong-parity", input: open(2, nil), reason: "wrong parity"},
		{name: "fail/open-zero-id", input: open(0, nil), reason: "wrong parity"},
		{name: "fail/open-duplicate", input: cat(open(1, nil), open(1, nil)), reason: "already used"},
		{name: "fail/open-reused-lower-id", input: cat(open(5, nil), open(3, nil)), reason: "already used"},
		{name: "fail/window-overflow", input: cat(open(1, nil), frame(Version, TypeWindow, 1, MaxWindow, nil)), reason: "window overflow"},
		{name: "fail/window-unknown-stream", input: frame(Version, TypeWindow, 7, 1, nil), reason: "unknown stream"},
		{name: "fail/close-with-payload", input: cat(open(1, nil), frame(Version, TypeClose, 1, 1, []byte{0})), reason: "Close with payload"},
		{name: "fail/close-twice", input: cat(open(1, nil), frame(Version, TypeClose, 1, 0, nil), frame(Version, TypeClose, 1, 0, nil)), reason: "duplicate Close"},
		{name: "fail/reset-reason-too-long", input: cat(open(1, nil), frame(Version, TypeReset, 1, MaxResetReason+1, nil)), reason: "MaxResetReason"},
		{name: "fail/ping-on-stream", input: frame(Version, TypePing, 1, 0, nil), reason: "Ping on a stream"},
		{name: "fail/goaway-with-payload", input: frame(Version, TypeGoAway, 0, 3, nil), reason: "GoAway"},
		{name: "fail/truncated-header", input: []byte{Version, byte(TypeData), 0, 0, 0}, want: io.ErrUnexpectedEOF},
		{name: "fail/truncated-payload", input: cat(open(1, nil), frame(Version, TypeData, 1, 10, []byte("abc"))), want: io.ErrUnexpectedEOF},
		{name: "ok/open-data-close", input: cat(open(1, []byte("m")), data(1, []byte("hello")), frame(Version, TypeClose, 1, 0, nil)), want: io.EOF},
		{name: "ok/late-frames-after-reset", input: cat(open(1, nil), frame(Version, TypeReset, 1, 2, []byte("no")), data(1, []byte("late")), frame(Version, TypeWindow, 1, 5, nil)), want: io.EOF},
		{name: "ok/ping-pong-goaway", input: cat(frame(Version, TypePing, 0, 42, nil), frame(Version, TypePong, 0, 9, nil), frame(Version, TypeGoAway, 0, 0, nil)), want: io.EOF},
		{name: "ok/small-frames-packed", input: cat(open(1, nil), data(1, []byte("a")), data(1, make([]byte, 5000)), data(1, full), data(1, []byte("z"))), want: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			s := rawServer(t, tt.cfg, tt.input, !tt.noRead)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			err := s.Err()
			if tt.reason != "" {
				var pe *ProtocolError
				if !errors.As(err, &pe) || !contains(pe.Reason, tt.reason) {
					t.Fatalf("Err = %v, want ProtocolError with %q", err, tt.reason)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("Err = %v, want %v", err, tt.want)
			}
			// A header claiming up to 4 GiB must not make us allocate it:
			// the whole run (session included) stays far below one frame of
			// hostile size.
			if grown := after.TotalAlloc - before.TotalAlloc; tt.name == "fail/data-oversized-4GiB" && grown > 4<<20 {
				t.Fatalf("allocated %d bytes for a hostile header", grown)
			}
		})
	}
}

// TestHostileHeaderAllocatesNothing checks the claim directly: validating
// and rejecting an oversized Data header allocates no payload buffer.
func TestHostileHeaderAllocatesNothing(t *testing.T) {
	s := &Session{streams: map[uint32]*Stream{}}
	h := header{version: Version, typ: TypeData, streamID: 1, length: 1 << 30}
	allocs := testing.AllocsPerRun(100, func() {
		_ = s.handleFrame(h)
	})
	// The ProtocolError itself and its formatted reason are the only allocations.
	if allocs > 6 {
		t.Fatalf("%v allocations rejecting a hostile header", allocs)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func FuzzSession(f *testing.F) {
	full := make([]byte, MaxFramePayload)
	f.Add(cat(open(1, []byte("m")), data(1, []byte("hello")), frame(Version, TypeClose, 1, 0, nil)))
	f.Add(cat(open(1, nil), frame(Version, TypeReset, 1, 2, []byte("no")), data(1, []byte("late"))))
	f.Add(cat(open(1, nil), data(1, full[:4096]), data(1, []byte("x")), frame(Version, TypeWindow, 1, 100, nil)))
	f.Add(cat(frame(Version, TypePing, 0, 1, nil), frame(Version, TypeGoAway, 0, 0, nil), open(3, nil)))
	f.Add(frame(Version, TypeData, 1, 0xffffffff, nil))
	f.Add([]byte{1, 2, 3})
	cfg := &Config{StreamWindow: InitialStreamWindow, AcceptBacklog: 4, MaxStreams: 8}
	f.Fuzz(func(t *testing.T, input []byte) {
		s := rawServer(t, cfg, input, true)
		if s.Err() == nil {
			t.Fatal("dead session without an error")
		}
	})
}

func FuzzFrameHeader(f *testing.F) {
	f.Add(uint8(1), uint8(0), uint16(0), uint32(1), uint32(65536))
	f.Add(uint8(0xff), uint8(0xff), uint16(0xffff), uint32(0xffffffff), uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, version, typ uint8, flags uint16, id, length uint32) {
		h := header{version: version, typ: FrameType(typ), flags: flags, streamID: id, length: length}
		var b [HeaderSize]byte
		encodeHeader(b[:], h)
		if got := decodeHeader(b[:]); got != h {
			t.Fatalf("decode(encode(%+v)) = %+v", h, got)
		}
		if version == Version && flags == 0 {
			if got := decodeHeader(appendHeader(nil, h.typ, id, length)); got != h {
				t.Fatalf("appendHeader round trip: %+v != %+v", got, h)
			}
		}
	})
}
