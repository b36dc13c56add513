// Package mux multiplexes many byte streams over one connection: the link
// between a Core and its relay. The Core keeps one outbound TLS 1.3
// connection to the relay; every device TCP connection that reaches the relay
// becomes one stream on that link, and the device keeps TLS end to end with
// the Core inside the stream. Both sides may open streams: the Client side
// opens odd stream IDs, the Server side even ones.
//
// # Promises
//
//   - Ordering and reliability per stream: bytes arrive in order, once, or
//     the stream (or the whole session) fails with an error.
//   - Per-stream flow control: a stream whose reader stalls never stalls
//     another stream. A sender never exceeds the receiver's per-stream
//     window, and the read loop never blocks on a stream: it appends the
//     payload to the stream's queue and moves on.
//   - Bounded memory: a stream buffers at most its window (plus one
//     partly filled 64 KiB chunk); an idle stream holds no buffer and no
//     goroutine inside this package. The send queue of a session and its
//     control-frame queue are bounded too.
//   - Frame limits are checked against the header before anything is
//     allocated for the payload; any violation kills the session with a
//     *ProtocolError naming the reason.
//   - Payloads, Open metadata and Reset reasons are never logged.
//
// # Wire format
//
// Every frame is a 12-byte header (HeaderSize), big endian, then a payload:
//
//	offset  size  field
//	0       1     version   always Version (1)
//	1       1     type      FrameType
//	2       2     flags     reserved, sent as 0, ignored
//	4       4     stream ID 0 for Ping, Pong, GoAway; non-zero otherwise
//	8       4     length    payload size, or a value (see below)
//
//	type         length field                    payload
//	TypeData     payload size ≤ MaxFramePayload  stream bytes; consumes window
//	TypeOpen     payload size ≤ MaxOpenMeta      opaque metadata
//	TypeWindow   send-window increment           none
//	TypeClose    0                               none: half-close, no more data
//	TypeReset    payload size ≤ MaxResetReason   reason; stream dead both ways
//	TypePing     opaque 32-bit nonce             none
//	TypePong     the Ping's nonce                none
//	TypeGoAway   0                               none: open no new streams
//
// Both directions of a new stream start with InitialStreamWindow; each
// receiver raises it to its own Config.StreamWindow with a Window frame sent
// right after the Open (opener) or on receiving it (acceptor). A receiver
// grants consumed bytes back once they reach a quarter of its window.
//
// The session dies with a *ProtocolError on: an unknown version or type; a
// Data frame longer than MaxFramePayload or than the stream's remaining
// receive window, or after the peer's Close; Open metadata longer than
// MaxOpenMeta, an Open with the opener's wrong parity or an ID not above
// every ID the peer opened before (duplicate or reused); a Window increment
// that takes the send window past MaxWindow (2^31-1); a frame for a stream
// ID that was never used. Frames for IDs that were used (a stream finished
// or reset while the peer was still sending) are late, not hostile: they
// are ignored and their payload skipped. A truncated header or payload ends
// the session with the read error.
//
// # Why not hashicorp/yamux
//
// yamux is the field's library, and the benchmarks in this package run it
// as the same-run anchor. It is not good enough for this link:
//
//   - it writes each frame's header and body with two separate conn.Write
//     calls, which over TLS means two records, and small TLS writes cost
//     about four times as much per byte;
//   - every Stream.Write waits for the send loop to take its frame, so one
//     writer has one frame in flight at a time;
//   - its stream window starts at 256 KiB and tops out there by default,
//     which caps one stream at about 40 Mbit/s at 50 ms RTT.
//
// Here, all frames go through one session-level queue: producers copy their
// frame into a shared buffer and return, and a single writer goroutine
// writes everything queued so far with one conn.Write, control frames
// (Window, Ping, Pong) first. The read loop reads each payload into a pooled
// chunk. Stream.WriteTo hands those chunks to the destination without
// another buffer, and Stream.ReadFrom on a socket waits for readability
// before taking a buffer, so 100,000 idle device streams are cheap.
package mux
