// Package relaytest is the conformance suite of relay.Store, run by every
// implementation against each of its backends. Each rule of the Store
// contract is one named case here; refusals (fail/...) come first.
package relaytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/relay"
	"github.com/custos-uem/custos/storetest"
)

// Run runs the suite; open must return an empty store of its own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(*testing.T) relay.Store) {
	storetest.Run(t, open, []storetest.Case[relay.Store]{
		{Name: "fail/duplicate-server", Fn: testDuplicateServer},
		{Name: "fail/unknown-server-update", Fn: testUnknownServer},
		{Name: "fail/route-taken-by-other-server-replace", Fn: testRouteTakenReplace},
		{Name: "fail/route-taken-change", Fn: testRouteTakenChange},
		{Name: "fail/invalid-route", Fn: testInvalidRoute},
		{Name: "fail/too-many-routes", Fn: testTooManyRoutes},
		{Name: "fail/invalid-server-id", Fn: testInvalidServerID},
		{Name: "ok/roundtrip", Fn: testRoundtrip},
		{Name: "ok/replace-is-exact", Fn: testReplaceExact},
		{Name: "ok/change-add-remove", Fn: testChange},
		{Name: "ok/address-beats-domain", Fn: testAddressBeatsDomain},
		{Name: "ok/disabled-server-has-no-routes", Fn: testDisabled},
		{Name: "ok/links-since", Fn: testLinksSince},
		{Name: "ok/drop-link", Fn: testDropLink},
		{Name: "ok/touch-link-upserts", Fn: testTouchLinkUpserts},
		{Name: "ok/concurrent-replace", Fn: testConcurrentReplace},
		{Name: "ok/concurrent-claim-one-wins", Fn: testConcurrentClaim},
	})
}

// T0 is the suite's clock (whole microseconds, UTC, as stores keep time).
var T0 = time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC)

// KeyHash returns the SHA-256 of a key derived from name.
func KeyHash(name string) []byte {
	h := sha256.Sum256([]byte("key of " + name))
	return h[:]
}

// Address returns the address route of email (the suite hashes with plain
// SHA-256; the relay's keyed hash has the same form).
func Address(email string) relay.Route {
	h := sha256.Sum256([]byte(email))
	return relay.Route{Kind: relay.RouteAddress, Value: hex.EncodeToString(h[:])}
}

// Domain returns the domain route of d.
func Domain(d string) relay.Route { return relay.Route{Kind: relay.RouteDomain, Value: d} }

// MustCreateServer registers an enabled server id created at T0.
func MustCreateServer(t testing.TB, s relay.Store, id string) *relay.Server {
	t.Helper()
	srv := &relay.Server{ID: id, KeyHash: KeyHash(id), CreatedAt: T0, UpdatedAt: T0}
	if err := s.CreateServer(context.Background(), srv); err != nil {
		t.Fatalf("CreateServer(%s): %v", id, err)
	}
	return srv
}

// MustReplaceRoutes replaces the server's routes and fails on error.
func MustReplaceRoutes(t testing.TB, s relay.Store, serverID string, routes ...relay.Route) {
	t.Helper()
	if err := s.ReplaceRoutes(context.Background(), serverID, routes); err != nil {
		t.Fatalf("ReplaceRoutes(%s, %d routes): %v", serverID, len(routes), err)
	}
}

// MustChangeRoutes changes the server's routes and fails on error.
func MustChangeRoutes(t testing.TB, s relay.Store, serverID string, add, remove []relay.Route) {
	t.Helper()
	if err := s.ChangeRoutes(context.Background(), serverID, add, remove); err != nil {
		t.Fatalf("ChangeRoutes(%s, +%d, -%d): %v", serverID, len(add), len(remove), err)
	}
}

// MustTouchLink records the link and fails on error.
func MustTouchLink(t testing.TB, s relay.Store, l relay.Link) {
	t.Helper()
	if err := s.TouchLink(context.Background(), l); err != nil {
		t.Fatalf("TouchLink(%+v): %v", l, err)
	}
}

// WantRoute checks that Route(addressHash, domain) finds want, or nothing
// when want is "".
func WantRoute(t testing.TB, s relay.Store, addressHash, domain, want string) {
	t.Helper()
	got, err := s.Route(context.Background(), addressHash, domain)
	if want == "" {
		if !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("Route(%.12s, %q) = %q, %v; want not found", addressHash, domain, got, err)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("Route(%.12s, %q) = %q, %v; want %q", addressHash, domain, got, err, want)
	}
}

// WantOwner checks that the route alone leads to want ("" for nobody).
func WantOwner(t testing.TB, s relay.Store, r relay.Route, want string) {
	t.Helper()
	if r.Kind == relay.RouteAddress {
		WantRoute(t, s, r.Value, "", want)
	} else {
		WantRoute(t, s, "", r.Value, want)
	}
}

// WantCode fails unless err is an *errs.Error of kind and code.
func WantCode(t testing.TB, what string, err error, kind errs.Kind, code string) *errs.Error {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != kind || e.Code != code {
		t.Fatalf("%s: got error %v, want %s %q", what, err, kind, code)
	}
	return e
}

func testDuplicateServer(t *testing.T, s relay.Store) {
	first := MustCreateServer(t, s, "core-a")
	dup := &relay.Server{ID: "core-a", KeyHash: KeyHash("other"), CreatedAt: T0.Add(time.Hour), UpdatedAt: T0.Add(time.Hour)}
	err := s.CreateServer(context.Background(), dup)
	WantCode(t, "CreateServer of a registered ID", err, errs.Conflict, "server_exists")
	storetest.WantErr(t, "CreateServer of a registered ID", err, relay.ErrServerExists)
	got, err := s.Server(context.Background(), "core-a")
	storetest.WantErr(t, "Server", err, nil)
	storetest.WantEqual(t, "the first registration", got, first)
}

func testUnknownServer(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	ghost := &relay.Server{ID: "core-ghost", KeyHash: KeyHash("ghost"), UpdatedAt: T0}
	storetest.WantErr(t, "UpdateServer of an unknown server", s.UpdateServer(ctx, ghost), errs.ErrNotFound)
	_, err := s.Server(ctx, "core-ghost")
	storetest.WantErr(t, "Server of an unknown server", err, errs.ErrNotFound)
	storetest.WantErr(t, "ReplaceRoutes of an unknown server",
		s.ReplaceRoutes(ctx, "core-ghost", []relay.Route{Domain("ghost.example")}), errs.ErrNotFound)
	storetest.WantErr(t, "ChangeRoutes of an unknown server",
		s.ChangeRoutes(ctx, "core-ghost", []relay.Route{Domain("ghost.example")}, nil), errs.ErrNotFound)
	WantOwner(t, s, Domain("ghost.example"), "")
	storetest.WantErr(t, "TouchLink of an unknown server",
		s.TouchLink(ctx, relay.Link{ServerID: "core-ghost", RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0}), errs.ErrNotFound)
	links, err := s.Links(ctx, "core-ghost", T0.Add(-time.Hour))
	if err != nil || len(links) != 0 {
		t.Fatalf("Links of an unknown server = %+v, %v; want none", links, err)
	}
}

func testRouteTakenReplace(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	MustReplaceRoutes(t, s, "core-a", Domain("a.example"), Address("ann@b.example"))
	MustReplaceRoutes(t, s, "core-b", Domain("b.example"), Address("bob@b.example"))

	// The first taken route in the caller's order is named; a domain in clear.
	err := s.ReplaceRoutes(ctx, "core-b", []relay.Route{Domain("new.example"), Address("new@b.example"),
		Domain("a.example"), Address("ann@b.example")})
	e := WantCode(t, "ReplaceRoutes with another server's domain", err, errs.Conflict, "route_taken")
	if !strings.Contains(e.Message, "a.example") {
		t.Fatalf("route_taken message %q does not name the domain", e.Message)
	}
	// An address is never named: its hash would tell the caller nothing
	// it should know.
	ann := Address("ann@b.example")
	err = s.ReplaceRoutes(ctx, "core-b", []relay.Route{Address("new@b.example"), ann, Domain("a.example")})
	e = WantCode(t, "ReplaceRoutes with another server's address", err, errs.Conflict, "route_taken")
	if !strings.Contains(e.Message, "an address") || strings.Contains(err.Error(), ann.Value) {
		t.Fatalf("route_taken for an address: %q (message %q); want \"an address\" and no hash", err, e.Message)
	}

	// Nothing changed: the first server keeps its routes, the second its old ones.
	WantOwner(t, s, Domain("a.example"), "core-a")
	WantOwner(t, s, ann, "core-a")
	WantOwner(t, s, Domain("b.example"), "core-b")
	WantOwner(t, s, Address("bob@b.example"), "core-b")
	WantOwner(t, s, Domain("new.example"), "")
	WantOwner(t, s, Address("new@b.example"), "")
}

func testRouteTakenChange(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	MustReplaceRoutes(t, s, "core-a", Domain("a.example"), Address("ann@a.example"))
	MustReplaceRoutes(t, s, "core-b", Domain("b.example"), Address("bob@b.example"))

	err := s.ChangeRoutes(ctx, "core-b", []relay.Route{Domain("new.example"), Domain("a.example")},
		[]relay.Route{Domain("b.example")})
	e := WantCode(t, "ChangeRoutes adding another server's domain", err, errs.Conflict, "route_taken")
	if !strings.Contains(e.Message, "a.example") {
		t.Fatalf("route_taken message %q does not name the domain", e.Message)
	}
	err = s.ChangeRoutes(ctx, "core-b", []relay.Route{Address("ann@a.example")}, nil)
	WantCode(t, "ChangeRoutes adding another server's address", err, errs.Conflict, "route_taken")

	WantOwner(t, s, Domain("a.example"), "core-a")
	WantOwner(t, s, Address("ann@a.example"), "core-a")
	WantOwner(t, s, Domain("b.example"), "core-b") // the removal was rolled back
	WantOwner(t, s, Address("bob@b.example"), "core-b")
	WantOwner(t, s, Domain("new.example"), "")
}

func testInvalidRoute(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustReplaceRoutes(t, s, "core-a", Domain("a.example"))
	good := Address("ann@a.example")
	for _, r := range []relay.Route{
		{Kind: "email", Value: "a.example"},
		{Kind: "", Value: good.Value},
		{Kind: relay.RouteAddress, Value: ""},
		{Kind: relay.RouteAddress, Value: strings.ToUpper(good.Value)},
		{Kind: relay.RouteAddress, Value: good.Value[:63]},
		{Kind: relay.RouteAddress, Value: good.Value + "0"},
		{Kind: relay.RouteAddress, Value: good.Value[:63] + "g"},
		{Kind: relay.RouteAddress, Value: "ann@a.example"},
		{Kind: relay.RouteDomain, Value: ""},
		{Kind: relay.RouteDomain, Value: "example"}, // a whole top-level domain
		{Kind: relay.RouteDomain, Value: "Example.com"},
		{Kind: relay.RouteDomain, Value: "example.com."},
		{Kind: relay.RouteDomain, Value: ".example.com"},
		{Kind: relay.RouteDomain, Value: "a..example.com"},
		{Kind: relay.RouteDomain, Value: "-a.example.com"},
		{Kind: relay.RouteDomain, Value: "a-.example.com"},
		{Kind: relay.RouteDomain, Value: "a_b.example.com"},
		{Kind: relay.RouteDomain, Value: "ex ample.com"},
		{Kind: relay.RouteDomain, Value: "Bücher.example"},
		{Kind: relay.RouteDomain, Value: "bÜcher.example"},
		{Kind: relay.RouteDomain, Value: "b\xffcher.example"},
		{Kind: relay.RouteDomain, Value: "a\u00a0b.example"},
		{Kind: relay.RouteDomain, Value: "192.0.2.1"},
		{Kind: relay.RouteDomain, Value: strings.Repeat("a", 64) + ".com"},
		{Kind: relay.RouteDomain, Value: strings.Repeat(strings.Repeat("a", 63)+".", 4) + "com"}, // 259 chars
		{Kind: relay.RouteDomain, Value: good.Value},                                             // a hash as a domain: one label
	} {
		what := fmt.Sprintf("route %q %q", r.Kind, r.Value)
		WantCode(t, what+": Validate", r.Validate(), errs.Invalid, "invalid_route")
		WantCode(t, what+": ReplaceRoutes", s.ReplaceRoutes(ctx, "core-a", []relay.Route{good, r}), errs.Invalid, "invalid_route")
		WantCode(t, what+": ChangeRoutes add", s.ChangeRoutes(ctx, "core-a", []relay.Route{good, r}, nil), errs.Invalid, "invalid_route")
		WantCode(t, what+": ChangeRoutes remove", s.ChangeRoutes(ctx, "core-a", nil, []relay.Route{r}), errs.Invalid, "invalid_route")
	}
	WantOwner(t, s, Domain("a.example"), "core-a")
	WantOwner(t, s, good, "")
	for _, r := range []relay.Route{good, Domain("a.example"), Domain("xn--bcher-kva.example"), Domain("bücher.example"), Domain("a-b.c-d.example"),
		Domain("1.example.co.uk"), Domain(strings.Repeat(strings.Repeat("a", 62)+".", 4)[:252] + "m")} {
		if err := r.Validate(); err != nil {
			t.Errorf("route %q %q: Validate = %v, want nil", r.Kind, r.Value, err)
		}
	}
	// A lookup of something that cannot be a route finds nothing.
	WantRoute(t, s, "not-a-hash", "A.EXAMPLE", "")
	WantRoute(t, s, strings.ToUpper(good.Value), "a.example", "core-a")
}

func testTooManyRoutes(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustReplaceRoutes(t, s, "core-a", Domain("a.example"))
	routes := make([]relay.Route, relay.MaxRoutesPerCall+1)
	for i := range routes {
		routes[i] = Domain(fmt.Sprintf("d%d.example", i))
	}
	WantCode(t, "ReplaceRoutes over the limit", s.ReplaceRoutes(ctx, "core-a", routes), errs.TooLarge, "too_many_routes")
	WantCode(t, "ChangeRoutes over the limit", s.ChangeRoutes(ctx, "core-a", routes[:10], routes[10:]), errs.TooLarge, "too_many_routes")
	WantOwner(t, s, Domain("a.example"), "core-a")
	WantOwner(t, s, routes[0], "")
}

func testInvalidServerID(t *testing.T, s relay.Store) {
	ctx := context.Background()
	for _, id := range []string{"", "ab", "1abc", "-abc", "abc-", "Abc", "a_b", "a.b.c", "ab c", "abc\n", "café",
		"a" + strings.Repeat("b", 63)} {
		what := fmt.Sprintf("server ID %q", id)
		WantCode(t, what+": ValidServerID", relay.ValidServerID(id), errs.Invalid, "invalid_server_id")
		WantCode(t, what+": CreateServer", s.CreateServer(ctx, &relay.Server{ID: id, KeyHash: KeyHash(id), CreatedAt: T0, UpdatedAt: T0}),
			errs.Invalid, "invalid_server_id")
		_, err := s.Server(ctx, id)
		WantCode(t, what+": Server", err, errs.Invalid, "invalid_server_id")
		WantCode(t, what+": ReplaceRoutes", s.ReplaceRoutes(ctx, id, nil), errs.Invalid, "invalid_server_id")
		WantCode(t, what+": TouchLink", s.TouchLink(ctx, relay.Link{ServerID: id, RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0}),
			errs.Invalid, "invalid_server_id")
	}
	for _, id := range []string{"abc", "a-1", "core-7", "a" + strings.Repeat("0", 62)} {
		if err := relay.ValidServerID(id); err != nil {
			t.Errorf("ValidServerID(%q) = %v, want nil", id, err)
		}
	}
	for _, key := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		err := s.CreateServer(ctx, &relay.Server{ID: "core-a", KeyHash: key, CreatedAt: T0, UpdatedAt: T0})
		WantCode(t, fmt.Sprintf("CreateServer with a %d-byte key hash", len(key)), err, errs.Invalid, "invalid_server")
	}
	MustCreateServer(t, s, "core-a")
	for _, l := range []relay.Link{
		{ServerID: "core-a", RelayID: "", Address: "r1.example:3101"},
		{ServerID: "core-a", RelayID: "relay-1", Address: ""},
		{ServerID: "core-a", RelayID: strings.Repeat("r", relay.MaxLinkFieldLen+1), Address: "r1.example:3101"},
	} {
		WantCode(t, fmt.Sprintf("TouchLink(%.40v)", l), s.TouchLink(ctx, l), errs.Invalid, "invalid_link")
	}
}

func testRoundtrip(t *testing.T, s relay.Store) {
	ctx := context.Background()
	created := MustCreateServer(t, s, "core-a")
	got, err := s.Server(ctx, "core-a")
	storetest.WantErr(t, "Server", err, nil)
	storetest.WantEqual(t, "Server after create", got, created)
	if got.License != nil || got.Disabled {
		t.Fatalf("a new server has License %q, Disabled %v; want nil, false", got.License, got.Disabled)
	}

	later := T0.Add(36 * time.Hour)
	upd := &relay.Server{ID: "core-a", KeyHash: KeyHash("rotated"), License: []byte("licence\x00\xff document"), Disabled: true,
		CreatedAt: later, UpdatedAt: later} // CreatedAt is not the update's business
	storetest.WantErr(t, "UpdateServer", s.UpdateServer(ctx, upd), nil)
	got, err = s.Server(ctx, "core-a")
	storetest.WantErr(t, "Server", err, nil)
	want := *upd
	want.CreatedAt = created.CreatedAt
	storetest.WantEqual(t, "Server after update", got, &want)

	upd.License, upd.Disabled = nil, false
	storetest.WantErr(t, "UpdateServer", s.UpdateServer(ctx, upd), nil)
	got, _ = s.Server(ctx, "core-a")
	if got.License != nil || got.Disabled {
		t.Fatalf("after clearing: License %q, Disabled %v; want nil, false", got.License, got.Disabled)
	}

	// Another server's row is untouched.
	other := MustCreateServer(t, s, "core-b")
	got, _ = s.Server(ctx, "core-b")
	storetest.WantEqual(t, "the other server", got, other)
}

func testReplaceExact(t *testing.T, s relay.Store) {
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	a1, a2, a3 := Address("a1@x.example"), Address("a2@x.example"), Address("a3@x.example")
	MustReplaceRoutes(t, s, "core-a", Domain("one.example"), a1, a2)
	MustReplaceRoutes(t, s, "core-a", a2, Domain("two.example"), a3, a3, Domain("two.example")) // repeats count once
	WantOwner(t, s, Domain("one.example"), "")
	WantOwner(t, s, a1, "")
	WantOwner(t, s, a2, "core-a")
	WantOwner(t, s, a3, "core-a")
	WantOwner(t, s, Domain("two.example"), "core-a")
	// Released routes are free for another server.
	MustReplaceRoutes(t, s, "core-b", Domain("one.example"), a1)
	WantOwner(t, s, Domain("one.example"), "core-b")
	WantOwner(t, s, a1, "core-b")
	// Replacing with nothing releases everything.
	MustReplaceRoutes(t, s, "core-a")
	WantOwner(t, s, a2, "")
	WantOwner(t, s, Domain("two.example"), "")
	WantOwner(t, s, a1, "core-b")
	// Replacing with the same set again is no change.
	MustReplaceRoutes(t, s, "core-b", a1, Domain("one.example"))
	MustReplaceRoutes(t, s, "core-b", a1, Domain("one.example"))
	WantOwner(t, s, a1, "core-b")
	WantOwner(t, s, Domain("one.example"), "core-b")
}

func testChange(t *testing.T, s relay.Store) {
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	a1, a2 := Address("a1@x.example"), Address("a2@x.example")
	MustChangeRoutes(t, s, "core-a", []relay.Route{a1, Domain("one.example")}, nil)
	MustReplaceRoutes(t, s, "core-b", Domain("b.example"))
	// Removing what the server does not own (nobody's, or another
	// server's) is a no-op; adding what it owns already too.
	MustChangeRoutes(t, s, "core-a", []relay.Route{a2, a2, Domain("one.example")},
		[]relay.Route{a1, Domain("nobody.example"), Domain("b.example")})
	WantOwner(t, s, a1, "")
	WantOwner(t, s, a2, "core-a")
	WantOwner(t, s, Domain("one.example"), "core-a")
	WantOwner(t, s, Domain("b.example"), "core-b")
	// A route both removed and added ends up owned.
	MustChangeRoutes(t, s, "core-a", []relay.Route{a2, a1}, []relay.Route{a2})
	WantOwner(t, s, a1, "core-a")
	WantOwner(t, s, a2, "core-a")
	MustChangeRoutes(t, s, "core-a", nil, []relay.Route{a1, a2, Domain("one.example")})
	WantOwner(t, s, a1, "")
	WantOwner(t, s, a2, "")
	WantOwner(t, s, Domain("one.example"), "")
	MustChangeRoutes(t, s, "core-a", nil, nil)
}

func testAddressBeatsDomain(t *testing.T, s relay.Store) {
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	bob, ann, carol := Address("bob@example.com"), Address("ann@example.com"), Address("carol@nowhere.example")
	MustReplaceRoutes(t, s, "core-a", Domain("example.com"))
	MustReplaceRoutes(t, s, "core-b", bob)
	WantRoute(t, s, bob.Value, "example.com", "core-b")
	WantRoute(t, s, ann.Value, "example.com", "core-a")
	WantRoute(t, s, bob.Value, "other.example", "core-b")
	WantRoute(t, s, "", "example.com", "core-a")
	WantRoute(t, s, bob.Value, "", "core-b")
	WantRoute(t, s, carol.Value, "nowhere.example", "")
	WantRoute(t, s, "", "", "")
	WantRoute(t, s, ann.Value, "sub.example.com", "") // a domain route is that domain only
}

func testDisabled(t *testing.T, s relay.Store) {
	ctx := context.Background()
	a := MustCreateServer(t, s, "core-a")
	b := MustCreateServer(t, s, "core-b")
	MustCreateServer(t, s, "core-c")
	bob := Address("bob@example.com")
	MustReplaceRoutes(t, s, "core-a", Domain("example.com"))
	MustReplaceRoutes(t, s, "core-b", bob)
	setDisabled := func(srv *relay.Server, disabled bool) {
		t.Helper()
		srv.Disabled = disabled
		if err := s.UpdateServer(ctx, srv); err != nil {
			t.Fatal(err)
		}
	}
	setDisabled(b, true)
	WantRoute(t, s, bob.Value, "example.com", "core-a") // the disabled address route does not hide the domain
	WantRoute(t, s, bob.Value, "", "")
	setDisabled(a, true)
	WantRoute(t, s, bob.Value, "example.com", "")
	WantRoute(t, s, "", "example.com", "")
	// A disabled server still owns its routes: nobody else may take them.
	WantCode(t, "ReplaceRoutes with a disabled server's domain",
		s.ReplaceRoutes(ctx, "core-c", []relay.Route{Domain("example.com")}), errs.Conflict, "route_taken")
	setDisabled(a, false)
	setDisabled(b, false)
	WantRoute(t, s, bob.Value, "example.com", "core-b")
	WantRoute(t, s, "", "example.com", "core-a")
}

func testLinksSince(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustCreateServer(t, s, "core-b")
	stale := relay.Link{ServerID: "core-a", RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0}
	fresh := relay.Link{ServerID: "core-a", RelayID: "relay-2", Address: "r0.example:3101", SeenAt: T0.Add(2 * time.Minute)}
	other := relay.Link{ServerID: "core-b", RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0.Add(2 * time.Minute)}
	MustTouchLink(t, s, stale)
	MustTouchLink(t, s, fresh)
	MustTouchLink(t, s, other)
	got, err := s.Links(ctx, "core-a", T0.Add(time.Minute))
	storetest.WantErr(t, "Links", err, nil)
	storetest.WantEqual(t, "Links since the stale one", got, []relay.Link{fresh})
	got, err = s.Links(ctx, "core-a", T0) // at or after
	storetest.WantErr(t, "Links", err, nil)
	storetest.WantEqual(t, "Links, ordered by address", got, []relay.Link{fresh, stale})
	got, err = s.Links(ctx, "core-a", T0.Add(time.Hour))
	if err != nil || len(got) != 0 {
		t.Fatalf("Links since later = %+v, %v; want none", got, err)
	}
}

func testDropLink(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	l1 := relay.Link{ServerID: "core-a", RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0}
	l2 := relay.Link{ServerID: "core-a", RelayID: "relay-2", Address: "r2.example:3101", SeenAt: T0}
	MustTouchLink(t, s, l1)
	MustTouchLink(t, s, l2)
	storetest.WantErr(t, "DropLink", s.DropLink(ctx, "core-a", "relay-1"), nil)
	got, err := s.Links(ctx, "core-a", T0)
	storetest.WantErr(t, "Links", err, nil)
	storetest.WantEqual(t, "Links after drop", got, []relay.Link{l2})
	storetest.WantErr(t, "DropLink again", s.DropLink(ctx, "core-a", "relay-1"), nil)
	storetest.WantErr(t, "DropLink of an unknown server", s.DropLink(ctx, "core-ghost", "relay-1"), nil)
	storetest.WantErr(t, "DropLink", s.DropLink(ctx, "core-a", "relay-2"), nil)
	got, err = s.Links(ctx, "core-a", T0)
	if err != nil || len(got) != 0 {
		t.Fatalf("Links after dropping all = %+v, %v; want none", got, err)
	}
}

func testTouchLinkUpserts(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	MustTouchLink(t, s, relay.Link{ServerID: "core-a", RelayID: "relay-1", Address: "r1.example:3101", SeenAt: T0})
	moved := relay.Link{ServerID: "core-a", RelayID: "relay-1", Address: "r1b.example:3101", SeenAt: T0.Add(30 * time.Second)}
	MustTouchLink(t, s, moved)
	got, err := s.Links(ctx, "core-a", T0)
	storetest.WantErr(t, "Links", err, nil)
	storetest.WantEqual(t, "Links after a second touch", got, []relay.Link{moved})
}

// routeSet is n addresses of prefix plus one domain.
func routeSet(prefix string, n int) []relay.Route {
	out := []relay.Route{Domain(prefix + ".example")}
	for i := range n {
		out = append(out, Address(fmt.Sprintf("%s-%d@x.example", prefix, i)))
	}
	return out
}

func testConcurrentReplace(t *testing.T, s relay.Store) {
	ctx := context.Background()
	MustCreateServer(t, s, "core-a")
	// Two overlapping sets: half of each is in the other.
	shared := routeSet("shared", 50)
	s1 := append(routeSet("one", 50), shared...)
	s2 := append(routeSet("two", 50), shared...)
	all := append(append(routeSet("one", 50), routeSet("two", 50)...), shared...)
	for round := range 5 {
		MustReplaceRoutes(t, s, "core-a", routeSet(fmt.Sprintf("old%d", round), 10)...)
		var wg sync.WaitGroup
		for _, set := range [][]relay.Route{s1, s2} {
			wg.Go(func() {
				if err := s.ReplaceRoutes(ctx, "core-a", set); err != nil {
					t.Errorf("round %d: ReplaceRoutes: %v", round, err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		owned := map[relay.Route]bool{}
		for _, r := range append(all, routeSet(fmt.Sprintf("old%d", round), 10)...) {
			got, err := s.Route(ctx, r.Value, "")
			if r.Kind == relay.RouteDomain {
				got, err = s.Route(ctx, "", r.Value)
			}
			switch {
			case err == nil && got == "core-a":
				owned[r] = true
			case !errors.Is(err, errs.ErrNotFound):
				t.Fatalf("Route: %q, %v", got, err)
			}
		}
		if !sameSet(owned, s1) && !sameSet(owned, s2) {
			t.Fatalf("round %d: after two concurrent replaces the server owns %d routes, neither of the two sets of %d", round, len(owned), len(s1))
		}
	}
}

func sameSet(owned map[relay.Route]bool, set []relay.Route) bool {
	if len(owned) != len(set) {
		return false
	}
	for _, r := range set {
		if !owned[r] {
			return false
		}
	}
	return true
}

// testConcurrentClaim: several servers claim the same routes at once;
// exactly one gets them, the others get route_taken.
func testConcurrentClaim(t *testing.T, s relay.Store) {
	ctx := context.Background()
	const servers = 4
	for i := range servers {
		MustCreateServer(t, s, fmt.Sprintf("core-%d", i))
	}
	set := routeSet("contested", 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range servers {
		id := fmt.Sprintf("core-%d", i)
		wg.Go(func() {
			err := s.ReplaceRoutes(ctx, id, append(routeSet(id, 5), set...))
			if err == nil {
				mu.Lock()
				winners = append(winners, id)
				mu.Unlock()
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != "route_taken" {
				t.Errorf("%s: ReplaceRoutes: %v; want success or route_taken", id, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d servers got the contested routes (%v), want 1", len(winners), winners)
	}
	for _, r := range set {
		WantOwner(t, s, r, winners[0])
	}
	for i := range servers {
		id := fmt.Sprintf("core-%d", i)
		want := ""
		if id == winners[0] {
			want = id
		}
		WantOwner(t, s, Domain(id+".example"), want)
	}
}
