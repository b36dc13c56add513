package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/pki"
)

// The link protocol. A Core dials the relay's link port (TLS 1.3 only) and
// sends one Hello; the relay answers one Welcome; from then on both ends
// speak relay/mux over the same connection. Each message of the handshake
// and each control exchange on a stream is a 4-byte big-endian length and
// that many bytes of JSON, the length checked against its limit before
// anything is allocated.
const (
	// LinkVersion is the version of the handshake and of the stream
	// metadata below.
	LinkVersion = 1
	// DefaultLinkPort is where relays listen for Cores.
	DefaultLinkPort = 3101
	// MaxHello bounds the Hello, which carries the licence (≤ 16 KiB).
	MaxHello = 64 << 10
	// MaxWelcome bounds the Welcome.
	MaxWelcome = 64 << 10
	// MaxControl bounds one control message on a stream (a push request
	// or its result, a route batch is split below this).
	MaxControl = 8 << 20
	// HandshakeTimeout is how long either end waits for the other's
	// handshake message: a client that opens the port and sends nothing
	// is cut off after it.
	HandshakeTimeout = 10 * time.Second
	// KeySize is the length of a server's authentication key.
	KeySize = 32
)

// Stream kinds, the "kind" of a stream's metadata.
const (
	// KindDevice is a device's connection, opened by the relay towards
	// the Core; the bytes are the device's TLS session with the Core.
	KindDevice = "device"
	// KindRoutes is the Core replacing its activation routes.
	KindRoutes = "routes"
	// KindPush is the Core handing the relay one push notification.
	KindPush = "push"
)

// Hello is the Core's first message on a link.
type Hello struct {
	Version  int    `json:"version"`
	ServerID string `json:"server_id"`
	// Key is the server's authentication key, base64url without padding.
	Key string `json:"key"`
	// Instance names the Core process; Slot the connection within its
	// pool. A new login with the same server, instance and slot evicts
	// the old session (a Core that lost its connection without the
	// relay noticing).
	Instance string `json:"instance"`
	Slot     int    `json:"slot"`
	// License is the Core's licence document (PEM), if it has one.
	License string `json:"license,omitempty"`
}

// Welcome is the relay's answer to a Hello.
type Welcome struct {
	Error *WireError `json:"error,omitempty"`
	// RelayID names the relay process.
	RelayID string `json:"relay_id,omitempty"`
	// License is the licence the relay verified for this server (PEM);
	// empty when it has none. LicenseError says why a presented one was
	// refused.
	License      string     `json:"license,omitempty"`
	LicenseError *WireError `json:"license_error,omitempty"`
}

// WireError is an error crossing the link: a stable code and a message
// safe to show.
type WireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *WireError) Error() string { return e.Code + ": " + e.Message }

// wireError turns err into its public form.
func wireError(err error) *WireError {
	if err == nil {
		return nil
	}
	code, msg, _ := errs.Public(err)
	return &WireError{Code: code, Message: msg}
}

// StreamMeta is the metadata of a stream (mux Open frame).
type StreamMeta struct {
	Kind string `json:"kind"`
	// Remote is the device's address as the relay saw it (KindDevice), so
	// the Core's per-address limits see devices, not the relay.
	Remote string `json:"remote,omitempty"`
}

// Errors of the link, with the codes a Core sees in its log.
var (
	ErrBadKey        = errs.E(errs.Unauthenticated, "relay_bad_key", "the server ID and key do not match a registered server")
	ErrUnknownServer = errs.E(errs.NotFound, "relay_unknown_server", "no server is registered under this ID")
	ErrVersion       = errs.E(errs.Invalid, "relay_version", "unsupported link version")
	ErrTooLarge      = errs.E(errs.TooLarge, "relay_message_too_large", "a link message is over its limit")
)

// writeMsg writes v as one length-prefixed JSON message.
func writeMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// readMsg reads one length-prefixed JSON message of at most limit bytes
// into v, refusing unknown fields. The length is checked before the body
// is allocated.
func readMsg(r io.Reader, limit int, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(limit) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errs.Wrap(errs.Invalid, "relay_bad_message", "a link message is not valid JSON", err)
	}
	return nil
}

// NewKey returns a fresh authentication key, encoded.
func NewKey() string {
	b := make([]byte, KeySize)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashKey is what the relay stores of a key: SHA-256 of its bytes. A key
// that does not decode to KeySize bytes hashes to nil.
func HashKey(key string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || len(b) != KeySize {
		return nil
	}
	h := sha256.Sum256(b)
	return h[:]
}

// NewServerID returns a random server ID: a DNS label ("c" and 15
// lowercase base32 characters), so a Core can put it in its certificate.
func NewServerID() string {
	return "c" + strings.ToLower(rand.Text()[:15])
}

// LoadOrCreateIdentity returns the server ID and key kept in dir
// (server-id and relay.key), creating both on first use.
func LoadOrCreateIdentity(dir string) (serverID, key string, err error) {
	idPath, keyPath := dir+"/"+ServerIDFile, dir+"/"+KeyFile
	idb, err1 := os.ReadFile(idPath)
	keyb, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		serverID, key = strings.TrimSpace(string(idb)), strings.TrimSpace(string(keyb))
		if err := ValidServerID(serverID); err != nil {
			return "", "", fmt.Errorf("%s: %w", idPath, err)
		}
		if HashKey(key) == nil {
			return "", "", fmt.Errorf("%s: not a relay key", keyPath)
		}
		return serverID, key, nil
	}
	if !errors.Is(err1, os.ErrNotExist) && err1 != nil {
		return "", "", err1
	}
	if err1 == nil { // an ID without its key: keep the ID, new key
		serverID = strings.TrimSpace(string(idb))
	} else {
		serverID = NewServerID()
	}
	key = NewKey()
	if err := pki.WriteFileAtomic(keyPath, []byte(key+"\n"), 0o600); err != nil {
		return "", "", err
	}
	if err := pki.WriteFileAtomic(idPath, []byte(serverID+"\n"), 0o644); err != nil {
		return "", "", err
	}
	return serverID, key, nil
}

// Files of a Core's relay identity in its data directory.
const (
	ServerIDFile = "server-id"
	KeyFile      = "relay.key"
)

// hostOnly strips a port from addr, if any.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
