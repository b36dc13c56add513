package router

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	long := strings.Repeat("a", MaxDomainLen)
	tests := []struct {
		name    string
		in      []byte
		want    Request
		wantErr error // nil: any error will do when wantOK is false
		wantOK  bool
	}{
		{name: "fail/empty", in: nil, wantErr: io.EOF},
		{name: "fail/socks4 version", in: []byte{4, 1, 0, 1, 127, 0, 0, 1, 0, 80}, wantErr: errSOCKS},
		{name: "fail/unknown address type", in: []byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, wantErr: errAddrType},
		{name: "fail/truncated IPv4", in: []byte{5, 1, 0, 1, 127, 0}, wantErr: io.ErrUnexpectedEOF},
		{name: "fail/truncated IPv6", in: append([]byte{5, 1, 0, 4}, make([]byte, 10)...), wantErr: io.ErrUnexpectedEOF},
		{name: "fail/empty host name", in: []byte{5, 1, 0, 3, 0, 0, 80}, wantErr: errSOCKS},
		{name: "fail/host name shorter than its length", in: []byte{5, 1, 0, 3, 10, 'a', 'b', 0, 80}, wantErr: io.ErrUnexpectedEOF},
		{name: "fail/no port", in: []byte{5, 1, 0, 3, 1, 'a'}, wantErr: io.ErrUnexpectedEOF},
		{name: "ok/IPv4", in: []byte{5, 1, 0, 1, 192, 0, 2, 1, 0x0c, 0x1d}, wantOK: true,
			want: Request{Cmd: CmdConnect, Dest: Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 3101}}},
		{name: "ok/IPv6", in: append(append([]byte{5, 1, 0, 4}, netip.MustParseAddr("2001:db8::1").AsSlice()...), 1, 187), wantOK: true,
			want: Request{Cmd: CmdConnect, Dest: Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 443}}},
		{name: "ok/host name", in: []byte{5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 80}, wantOK: true,
			want: Request{Cmd: CmdConnect, Dest: Addr{Name: "example.com", Port: 80}}},
		{name: "ok/longest host name", in: append(append([]byte{5, 1, 0, 3, MaxDomainLen}, long...), 0, 80), wantOK: true,
			want: Request{Cmd: CmdConnect, Dest: Addr{Name: long, Port: 80}}},
		{name: "ok/BIND is parsed, refused later", in: []byte{5, 2, 0, 1, 192, 0, 2, 1, 0, 80}, wantOK: true,
			want: Request{Cmd: CmdBind, Dest: Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadRequest(bytes.NewReader(tt.in))
			if !tt.wantOK {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("ReadRequest = %+v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReadRequest = %+v, %v; want %+v", got, err, tt.want)
			}
			if enc := AppendRequest(nil, got); !bytes.Equal(enc, tt.in) {
				t.Errorf("AppendRequest = % x, want % x", enc, tt.in)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		name, in string
		want     Addr
		wantErr  bool
	}{
		{name: "fail/no port", in: "example.com", wantErr: true},
		{name: "fail/port out of range", in: "example.com:65536", wantErr: true},
		{name: "fail/empty host", in: ":80", wantErr: true},
		{name: "fail/host name over 255 bytes", in: strings.Repeat("a", MaxDomainLen+1) + ":80", wantErr: true},
		{name: "fail/IPv6 zone", in: "[fe80::1%eth0]:80", wantErr: true},
		{name: "ok/name stays a name", in: "relay.example.com:3101", want: Addr{Name: "relay.example.com", Port: 3101}},
		{name: "ok/IPv4", in: "192.0.2.7:80", want: Addr{IP: netip.MustParseAddr("192.0.2.7"), Port: 80}},
		{name: "ok/IPv6", in: "[2001:db8::7]:80", want: Addr{IP: netip.MustParseAddr("2001:db8::7"), Port: 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAddr(tt.in)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Fatalf("parseAddr(%q) = %+v, %v", tt.in, got, err)
			}
		})
	}
}

func TestReplyText(t *testing.T) {
	for rep, want := range map[byte]string{
		RepNotAllowed:          "connection not allowed by ruleset",
		RepCommandNotSupported: "command not supported",
		0x42:                   "unassigned reply code 0x42",
	} {
		if got := ReplyText(rep); got != want {
			t.Errorf("ReplyText(0x%02x) = %q, want %q", rep, got, want)
		}
	}
}

// FuzzReadRequest: no input panics the parser, and a request it accepts
// encodes back to the bytes it consumed, RSV aside (ignored on read,
// written as zero).
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80})
	f.Add(append(append([]byte{5, 3, 0, 4}, netip.IPv6Loopback().AsSlice()...), 0, 80))
	f.Add([]byte{5, 1, 0, 3, 0})
	f.Add([]byte{5, 1, 7, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		req, err := ReadRequest(r)
		if err != nil {
			return
		}
		consumed := in[:len(in)-r.Len()]
		enc := AppendRequest(nil, req)
		want := append([]byte(nil), consumed...)
		want[2] = 0 // RSV
		if !bytes.Equal(enc, want) {
			t.Fatalf("round trip: read % x as %+v, wrote % x", consumed, req, enc)
		}
		again, err := ReadRequest(bytes.NewReader(enc))
		if err != nil || again != req {
			t.Fatalf("re-read %+v, %v; want %+v", again, err, req)
		}
	})
}
