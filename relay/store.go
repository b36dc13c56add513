package relay

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/custos-uem/custos/errs"
)

// Limits of the relay's state.
const (
	// MaxRoutesPerCall bounds the routes of one ReplaceRoutes call (and the
	// additions plus removals of one ChangeRoutes call): the users of a
	// 100,000-user company fit in one call.
	MaxRoutesPerCall = 100000
	// MaxDomainLen is the longest domain a route names (RFC 1035).
	MaxDomainLen = 253
	// MaxLinkFieldLen bounds a Link's RelayID and Address.
	MaxLinkFieldLen = 255
)

// Server is one Core registered with the relay under its server ID.
type Server struct {
	// ID is 3–63 characters of [a-z0-9-], starting with a letter and not
	// ending with a hyphen: a DNS label, because Cores put it in their TLS
	// certificate (see ValidServerID).
	ID string
	// KeyHash is the SHA-256 of the server's 32-byte authentication key;
	// never the key.
	KeyHash []byte
	// License is the last licence document the Core presented and the
	// relay verified, verbatim; nil before (an empty one is stored as nil).
	License   []byte
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RouteKind says what a Route matches.
type RouteKind string

// Route kinds.
const (
	RouteAddress RouteKind = "address" // one user's email address, as its keyed hash
	RouteDomain  RouteKind = "domain"  // every address of a domain
)

// Route says which server a user may activate against: an address (stored
// only as its keyed hash, so a stolen relay database does not list a
// company's users) or a whole domain.
type Route struct {
	Kind RouteKind
	// Value is, for RouteAddress, the lowercase hex HMAC-SHA-256 of the
	// address (64 characters); for RouteDomain, the domain in lowercase
	// ASCII (IDNA conversion is the caller's business), at most
	// MaxDomainLen characters. A domain route matches that exact domain,
	// not its subdomains.
	Value string
}

// Link records that a relay process holds a live link of a server (for
// discovery across relays).
type Link struct {
	ServerID string
	RelayID  string // the relay process
	Address  string // where devices reach that relay (host:port)
	SeenAt   time.Time
}

// Store is the relay's state. Every method is safe for concurrent use by
// several relay processes sharing one database. Input that breaks the
// rules of ValidServerID, Server.Validate, Route.Validate or Link.Validate
// is refused with an errs.Invalid error before anything is stored.
type Store interface {
	// CreateServer registers s. An ID already registered is
	// ErrServerExists (an errs.Conflict).
	CreateServer(ctx context.Context, s *Server) error
	// Server returns the server with id, or errs.ErrNotFound (wrapped).
	Server(ctx context.Context, id string) (*Server, error)
	// UpdateServer replaces the KeyHash, License, Disabled and UpdatedAt
	// of the server s.ID. errs.ErrNotFound if it is not registered.
	UpdateServer(ctx context.Context, s *Server) error
	// ReplaceRoutes makes the server's routes exactly routes (repeats
	// counted once; at most MaxRoutesPerCall), all or nothing. A route
	// another server owns fails the call with RouteTaken of the first such
	// route in the order given, and nothing is changed. errs.ErrNotFound
	// if the server is not registered.
	ReplaceRoutes(ctx context.Context, serverID string, routes []Route) error
	// ChangeRoutes removes remove from the server's routes, then adds add
	// (so a route in both ends up owned), all or nothing, with the
	// conflict rule of ReplaceRoutes for add. Removing a route the server
	// does not own is a no-op. errs.ErrNotFound if the server is not
	// registered.
	ChangeRoutes(ctx context.Context, serverID string, add, remove []Route) error
	// Route returns the server a user may activate against: the owner of
	// the address route addressHash if there is one, else the owner of the
	// domain route domain. Routes of a Disabled server do not exist for
	// Route (so its domain route does not hide another server's address
	// route, and vice versa). An argument that is empty or could not be a
	// route's value (Route.Validate) matches nothing. errs.ErrNotFound if
	// neither matches.
	Route(ctx context.Context, addressHash, domain string) (serverID string, err error)
	// TouchLink records l, replacing the link with the same ServerID and
	// RelayID. errs.ErrNotFound if the server is not registered.
	TouchLink(ctx context.Context, l Link) error
	// Links returns the server's links seen at or after since, ordered by
	// Address (then RelayID); none is an empty list, not an error.
	Links(ctx context.Context, serverID string, since time.Time) ([]Link, error)
	// DropLink forgets the link; dropping one that is absent is no error.
	DropLink(ctx context.Context, serverID, relayID string) error
}

// ErrServerExists is CreateServer's error for an ID already registered.
var ErrServerExists = errs.E(errs.Conflict, "server_exists", "a server with this ID is already registered")

// RouteTaken is the conflict ReplaceRoutes and ChangeRoutes return when r
// is owned by another server. It names a domain in clear, but an address
// only as "an address": the other server's users are none of the
// caller's business.
func RouteTaken(r Route) *errs.Error {
	msg := "an address is already routed to another server"
	if r.Kind == RouteDomain {
		msg = fmt.Sprintf("the domain %q is already routed to another server", r.Value)
	}
	return errs.E(errs.Conflict, "route_taken", msg)
}

// TooManyRoutes is the error of a call with more than MaxRoutesPerCall
// routes.
func TooManyRoutes(n int) *errs.Error {
	return errs.E(errs.TooLarge, "too_many_routes",
		fmt.Sprintf("%d routes in one call; at most %d are allowed", n, MaxRoutesPerCall))
}

func invalid(code, msg string) *errs.Error { return errs.E(errs.Invalid, code, msg) }

// ValidServerID returns nil if id is a valid server ID: 3–63 characters
// of [a-z0-9-], starting with a letter and not ending with a hyphen (a DNS
// label), else an errs.Invalid error.
func ValidServerID(id string) error {
	ok := len(id) >= 3 && len(id) <= 63 && id[0] >= 'a' && id[0] <= 'z' && id[len(id)-1] != '-'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return invalid("invalid_server_id", "a server ID has 3 to 63 characters a-z, 0-9 and '-', starts with a letter and does not end with '-'")
	}
	return nil
}

// Validate checks what a Store stores of s: a valid ID and a KeyHash of
// SHA-256 size.
func (s *Server) Validate() error {
	if err := ValidServerID(s.ID); err != nil {
		return err
	}
	if len(s.KeyHash) != sha256.Size {
		return invalid("invalid_server", fmt.Sprintf("a server's key hash has %d bytes", sha256.Size))
	}
	return nil
}

// Validate returns nil if r is a known kind with a well-formed value, else
// an errs.Invalid error. An address is 64 lowercase hex digits. A domain
// is at least two labels of 1–63 bytes that neither start nor end with a
// hyphen, made of a-z, 0-9, '-' and (IDNA not being required) lowercase
// non-ASCII letters, digits and combining marks, at most MaxDomainLen
// bytes in all, with no trailing dot and a last label that is not all
// digits (an IP address is not a domain). Two labels at least, so that no
// server claims a whole top-level domain. An A-label (xn--…) and its
// U-label are different values: converting is the caller's business.
func (r Route) Validate() error {
	switch r.Kind {
	case RouteAddress:
		ok := len(r.Value) == 2*sha256.Size
		for i := 0; ok && i < len(r.Value); i++ {
			c := r.Value[i]
			ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
		}
		if !ok {
			return invalid("invalid_route", "an address route is 64 lowercase hex digits")
		}
	case RouteDomain:
		if !validDomain(r.Value) {
			return invalid("invalid_route", "a domain route is a lowercase domain name of at least two labels")
		}
	default:
		return invalid("invalid_route", `a route's kind is "address" or "domain"`)
	}
	return nil
}

func validDomain(d string) bool {
	if len(d) > MaxDomainLen || !utf8.ValidString(d) || strings.ToLower(d) != d {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' ||
				c >= utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c) || unicode.Is(unicode.Mn, c))) {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

// Validate returns nil if l names a valid server ID, a relay and an
// address of at most MaxLinkFieldLen bytes each, else an errs.Invalid
// error.
func (l Link) Validate() error {
	if err := ValidServerID(l.ServerID); err != nil {
		return err
	}
	if l.RelayID == "" || len(l.RelayID) > MaxLinkFieldLen || l.Address == "" || len(l.Address) > MaxLinkFieldLen {
		return invalid("invalid_link", fmt.Sprintf("a link names its relay and address, at most %d bytes each", MaxLinkFieldLen))
	}
	return nil
}
