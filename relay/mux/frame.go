package mux

import (
	"encoding/binary"
	"fmt"
)

// Wire constants. Every limit a peer can push on us is named here, next to
// the header layout, and is checked before anything is allocated for the
// frame's payload.
const (
	// Version is the only protocol version this package speaks; a frame with
	// any other version kills the session.
	Version = 1

	// HeaderSize is the fixed size of every frame header.
	HeaderSize = 12

	// MaxFramePayload bounds the payload of a Data frame. It is also the
	// largest buffer the read loop ever takes from its pool for one frame.
	MaxFramePayload = 64 << 10

	// MaxOpenMeta bounds the opaque metadata of an Open frame.
	MaxOpenMeta = 1 << 10

	// MaxResetReason bounds the reason text of a Reset frame; longer reasons
	// given to Stream.Reset are truncated.
	MaxResetReason = 256

	// MaxWindow is the largest send window a peer may grant a stream. A
	// Window increment that would take the window past it is a protocol
	// violation, so window arithmetic never overflows.
	MaxWindow = 1<<31 - 1

	// InitialStreamWindow is the window both directions of a new stream start
	// with, before the receiver's first Window frame raises it to its
	// configured StreamWindow. Both ends send that frame together with the
	// Open (opener) or on receipt of it (acceptor), so a bulk transfer pays
	// at most one round trip at this window.
	InitialStreamWindow = 256 << 10

	// DefaultStreamWindow is the default per-stream receive window: one
	// stream carries 1 Gbit/s at 50 ms RTT only with ≥ 6.25 MB in flight.
	DefaultStreamWindow = 16 << 20
)

// FrameType is the second byte of a frame header.
type FrameType uint8

// Frame types. Frames of stream 0 (Ping, Pong, GoAway) concern the session;
// all others name a stream.
const (
	// TypeData carries up to MaxFramePayload bytes of stream data, consuming
	// the same amount of the receiver's window.
	TypeData FrameType = 0
	// TypeOpen opens the stream named by the header; its payload is opaque
	// metadata of at most MaxOpenMeta bytes.
	TypeOpen FrameType = 1
	// TypeWindow grants more send window: the length field is the increment
	// and there is no payload.
	TypeWindow FrameType = 2
	// TypeClose half-closes: the sender sends no more data on the stream.
	// No payload.
	TypeClose FrameType = 3
	// TypeReset kills the stream in both directions; the payload is a reason
	// of at most MaxResetReason bytes.
	TypeReset FrameType = 4
	// TypePing asks for a Pong; the length field is an opaque 32-bit nonce,
	// there is no payload.
	TypePing FrameType = 5
	// TypePong answers a Ping with its nonce in the length field.
	TypePong FrameType = 6
	// TypeGoAway tells the peer not to open new streams. No payload.
	TypeGoAway FrameType = 7

	maxFrameType = TypeGoAway
)

var frameTypeNames = [...]string{"Data", "Open", "Window", "Close", "Reset", "Ping", "Pong", "GoAway"}

func (t FrameType) String() string {
	if t <= maxFrameType {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// header is a decoded frame header. The meaning of length depends on the
// type: payload size for Data, Open and Reset, credit for Window, nonce for
// Ping and Pong, zero otherwise.
type header struct {
	version  uint8
	typ      FrameType
	flags    uint16
	streamID uint32
	length   uint32
}

// encodeHeader writes h into b[:HeaderSize].
func encodeHeader(b []byte, h header) {
	_ = b[HeaderSize-1] // one bounds check instead of five
	b[0] = h.version
	b[1] = byte(h.typ)
	binary.BigEndian.PutUint16(b[2:4], h.flags)
	binary.BigEndian.PutUint32(b[4:8], h.streamID)
	binary.BigEndian.PutUint32(b[8:12], h.length)
}

// appendHeader appends the encoded header of a current-version frame; it is
// the only way frames reach the send buffers, so it never allocates once the
// buffers have grown.
func appendHeader(b []byte, typ FrameType, id, length uint32) []byte {
	return append(b, Version, byte(typ), 0, 0,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id),
		byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
}

func decodeHeader(b []byte) header {
	_ = b[HeaderSize-1]
	return header{
		version:  b[0],
		typ:      FrameType(b[1]),
		flags:    binary.BigEndian.Uint16(b[2:4]),
		streamID: binary.BigEndian.Uint32(b[4:8]),
		length:   binary.BigEndian.Uint32(b[8:12]),
	}
}

// ProtocolError is the cause of a session killed because the peer broke the
// wire format. Reason never contains payload bytes.
type ProtocolError struct {
	Type     FrameType
	StreamID uint32
	Reason   string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("mux: protocol error: %s (frame %v, stream %d)", e.Reason, e.Type, e.StreamID)
}

func protoErr(h header, format string, args ...any) error {
	return &ProtocolError{Type: h.typ, StreamID: h.streamID, Reason: fmt.Sprintf(format, args...)}
}
