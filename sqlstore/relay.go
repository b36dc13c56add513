package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/custos-uem/custos/relay"
)

var _ relay.Store = (*DB)(nil)

// relayServerColumns are the columns scanRelayServer reads.
const relayServerColumns = `id, key_hash, license, disabled, created_at, updated_at`

func scanRelayServer(s scanner) (*relay.Server, error) {
	var v relay.Server
	if err := s.Scan(&v.ID, &v.KeyHash, &v.License, &v.Disabled, timeDest{&v.CreatedAt}, timeDest{&v.UpdatedAt}); err != nil {
		return nil, err
	}
	if len(v.License) == 0 {
		v.License = nil
	}
	return &v, nil
}

// nullBytes stores an empty byte slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CreateServer implements relay.Store.
func (db *DB) CreateServer(ctx context.Context, s *relay.Server) error {
	if err := s.Validate(); err != nil {
		return err
	}
	op := "create relay server " + s.ID
	n, err := db.exec(ctx, op, `INSERT INTO relay_servers (`+relayServerColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`,
		s.ID, s.KeyHash, nullBytes(s.License), s.Disabled, micros(s.CreatedAt), micros(s.UpdatedAt))
	if err == nil && n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, relay.ErrServerExists)
	}
	return err
}

// Server implements relay.Store.
func (db *DB) Server(ctx context.Context, id string) (*relay.Server, error) {
	if err := relay.ValidServerID(id); err != nil {
		return nil, err
	}
	return one(ctx, db.reader(), scanRelayServer, "relay server "+id,
		`SELECT `+relayServerColumns+` FROM relay_servers WHERE id = $1`, id)
}

// UpdateServer implements relay.Store.
func (db *DB) UpdateServer(ctx context.Context, s *relay.Server) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return db.execOne(ctx, "update relay server "+s.ID,
		`UPDATE relay_servers SET key_hash = $2, license = $3, disabled = $4, updated_at = $5 WHERE id = $1`,
		s.ID, s.KeyHash, nullBytes(s.License), s.Disabled, micros(s.UpdatedAt))
}

// relayRouteSQL holds the statements of the route writes, in the dialect
// of one backend. A set of values is one parameter whatever its size (an
// array on PostgreSQL, a JSON array walked by json_each on SQLite), so a
// 100,000-route call is a handful of statements, and their texts never
// vary (see idSet).
type relayRouteSQL struct {
	lock     string // locks the server's row ($1), or finds no row
	deleteIn string // deletes the server's routes inside the sets $2 (addresses), $3 (domains)
	insert   string // inserts the routes of kind $2 with the values $3 for server $1, skipping the taken ones
	owned    string // lists the server's routes
	countIn  string // counts the server's routes inside the sets
	taken    string // lists the routes inside the sets owned by other servers
}

func newRelayRouteSQL(backend string) relayRouteSQL {
	set, lock, insert := func(p string) string { return `value IN (SELECT value FROM json_each(` + p + `))` }, "",
		// SQLite needs the WHERE to tell ON CONFLICT from a join's ON.
		`INSERT INTO relay_routes (kind, value, server_id) SELECT $2, value, $1 FROM json_each($3) WHERE true ON CONFLICT DO NOTHING`
	if backend == Postgres {
		set = func(p string) string { return `value = ANY(` + p + `::text[])` }
		// NO KEY UPDATE: concurrent route writes of one server queue here,
		// while the foreign-key checks of TouchLink (KEY SHARE) do not.
		lock = ` FOR NO KEY UPDATE`
		insert = `INSERT INTO relay_routes (kind, value, server_id) SELECT $2::text, v, $1 FROM unnest($3::text[]) AS t (v)
			ON CONFLICT DO NOTHING`
	}
	in := `(kind = 'address' AND ` + set("$2") + ` OR kind = 'domain' AND ` + set("$3") + `)`
	return relayRouteSQL{
		lock:     `SELECT id FROM relay_servers WHERE id = $1` + lock,
		deleteIn: `DELETE FROM relay_routes WHERE server_id = $1 AND ` + in,
		insert:   insert,
		owned:    `SELECT kind, value FROM relay_routes WHERE server_id = $1`,
		countIn:  `SELECT count(*) FROM relay_routes WHERE server_id = $1 AND ` + in,
		taken:    `SELECT kind, value FROM relay_routes WHERE server_id <> $1 AND ` + in,
	}
}

var relaySQL = map[string]relayRouteSQL{SQLite: newRelayRouteSQL(SQLite), Postgres: newRelayRouteSQL(Postgres)}

// routeSet is a validated list of routes split by kind, repeats dropped,
// each kind sorted (so that concurrent writers insert in one order, which
// keeps PostgreSQL's row locks from deadlocking), bound as parameters.
type routeSet struct {
	given           []relay.Route // as the caller gave them, for the conflict message
	addrs, domains  []string
	addrArg, domArg any
	size            int
}

func (db *DB) routeSet(routes []relay.Route) (*routeSet, error) {
	s := &routeSet{given: routes, addrs: []string{}, domains: []string{}}
	for _, r := range routes {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		s.add(r)
	}
	slices.Sort(s.addrs)
	slices.Sort(s.domains)
	s.addrs, s.domains = slices.Compact(s.addrs), slices.Compact(s.domains)
	return s, db.bind(s)
}

func (s *routeSet) add(r relay.Route) {
	if r.Kind == relay.RouteAddress {
		s.addrs = append(s.addrs, r.Value)
	} else {
		s.domains = append(s.domains, r.Value)
	}
}

// bind counts the set and binds its lists as parameters.
func (db *DB) bind(s *routeSet) error {
	s.size = len(s.addrs) + len(s.domains)
	var err error
	if s.addrArg, err = db.textArg(s.addrs); err != nil {
		return err
	}
	s.domArg, err = db.textArg(s.domains)
	return err
}

// textArg binds a list of strings as one parameter: an array on
// PostgreSQL, a JSON array on SQLite.
func (db *DB) textArg(vals []string) (any, error) {
	if db.backend == Postgres {
		return vals, nil
	}
	b, err := json.Marshal(vals)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encode: %w", err)
	}
	return string(b), nil
}

// lockRelayServer takes the server's row for the rest of the write, or
// fails with errs.ErrNotFound.
func lockRelayServer(ctx context.Context, r runner, q relayRouteSQL, op, serverID string) error {
	var id string
	return dbErr(op, r.row(ctx, q.lock, serverID).Scan(&id))
}

// insertRoutes inserts the set's routes the server lacks and nobody else
// owns, and returns how many it inserted.
func insertRoutes(ctx context.Context, r runner, q relayRouteSQL, op, serverID string, s *routeSet) (int64, error) {
	var total int64
	for _, kind := range []struct {
		kind relay.RouteKind
		n    int
		arg  any
	}{{relay.RouteAddress, len(s.addrs), s.addrArg}, {relay.RouteDomain, len(s.domains), s.domArg}} {
		if kind.n == 0 {
			continue
		}
		n, err := exec(ctx, r, op, q.insert, serverID, string(kind.kind), kind.arg)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// routeTaken returns the conflict naming the first route of s.given, in
// the caller's order, that another server owns; s's lists bound as
// parameters narrow the search.
func routeTaken(ctx context.Context, r runner, q relayRouteSQL, op, serverID string, s *routeSet) error {
	taken, err := list(ctx, r, scanRoute, op, q.taken, serverID, s.addrArg, s.domArg)
	if err != nil {
		return err
	}
	owned := make(map[relay.Route]bool, len(taken))
	for _, rt := range taken {
		owned[rt] = true
	}
	for _, rt := range s.given {
		if owned[rt] {
			return fmt.Errorf("sqlstore: %s: %w", op, relay.RouteTaken(rt))
		}
	}
	return fmt.Errorf("sqlstore: %s: routes missing after insert, yet none owned by another server", op)
}

func scanCount(s scanner) (int64, error) {
	var n int64
	return n, s.Scan(&n)
}

// ReplaceRoutes implements relay.Store. It reads the server's routes and
// writes only the difference: one delete of the routes that go, one
// insert per kind of those that come, so a directory sync that changes
// little costs little more than the read (see BenchmarkReplaceRoutes100k).
// On PostgreSQL the server's row lock queues concurrent route writes of
// one server; a route another server inserts concurrently makes the insert
// wait for that transaction and then skip the route, and the shortfall
// is the conflict.
func (db *DB) ReplaceRoutes(ctx context.Context, serverID string, routes []relay.Route) error {
	if err := relay.ValidServerID(serverID); err != nil {
		return err
	}
	if len(routes) > relay.MaxRoutesPerCall {
		return relay.TooManyRoutes(len(routes))
	}
	want, err := db.routeSet(routes)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("replace the %d routes of relay server %s", want.size, serverID)
	q := relaySQL[db.backend]
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := lockRelayServer(ctx, r, q, op, serverID); err != nil {
			return err
		}
		have, err := list(ctx, r, scanRoute, op, q.owned, serverID)
		if err != nil {
			return err
		}
		gone, added, err := db.routeDiff(have, want)
		if err != nil {
			return fmt.Errorf("sqlstore: %s: %w", op, err)
		}
		if gone.size > 0 {
			if _, err := exec(ctx, r, op, q.deleteIn, serverID, gone.addrArg, gone.domArg); err != nil {
				return err
			}
		}
		n, err := insertRoutes(ctx, r, q, op, serverID, added)
		if err != nil || n == int64(added.size) {
			return err
		}
		return routeTaken(ctx, r, q, op, serverID, added)
	})
}

func scanRoute(s scanner) (relay.Route, error) {
	var rt relay.Route
	return rt, s.Scan(&rt.Kind, &rt.Value)
}

// routeDiff returns the routes of have that are not in want, and those of
// want that are not in have.
func (db *DB) routeDiff(have []relay.Route, want *routeSet) (gone, added *routeSet, err error) {
	in := make(map[relay.Route]bool, want.size)
	for _, v := range want.addrs {
		in[relay.Route{Kind: relay.RouteAddress, Value: v}] = true
	}
	for _, v := range want.domains {
		in[relay.Route{Kind: relay.RouteDomain, Value: v}] = true
	}
	gone = &routeSet{addrs: []string{}, domains: []string{}}
	for _, rt := range have {
		if in[rt] {
			delete(in, rt)
			continue
		}
		gone.add(rt)
	}
	added = &routeSet{given: want.given, addrs: []string{}, domains: []string{}}
	for _, v := range want.addrs {
		if in[relay.Route{Kind: relay.RouteAddress, Value: v}] {
			added.addrs = append(added.addrs, v)
		}
	}
	for _, v := range want.domains {
		if in[relay.Route{Kind: relay.RouteDomain, Value: v}] {
			added.domains = append(added.domains, v)
		}
	}
	if err := db.bind(gone); err != nil {
		return nil, nil, err
	}
	if err := db.bind(added); err != nil {
		return nil, nil, err
	}
	return gone, added, nil
}

// ChangeRoutes implements relay.Store, the way ReplaceRoutes does.
func (db *DB) ChangeRoutes(ctx context.Context, serverID string, add, remove []relay.Route) error {
	if err := relay.ValidServerID(serverID); err != nil {
		return err
	}
	if n := len(add) + len(remove); n > relay.MaxRoutesPerCall {
		return relay.TooManyRoutes(n)
	}
	plus, err := db.routeSet(add)
	if err != nil {
		return err
	}
	minus, err := db.routeSet(remove)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("add %d and remove %d routes of relay server %s", plus.size, minus.size, serverID)
	q := relaySQL[db.backend]
	return db.write(ctx, func(ctx context.Context, r runner) error {
		if err := lockRelayServer(ctx, r, q, op, serverID); err != nil {
			return err
		}
		if minus.size > 0 {
			if _, err := exec(ctx, r, op, q.deleteIn, serverID, minus.addrArg, minus.domArg); err != nil {
				return err
			}
		}
		n, err := insertRoutes(ctx, r, q, op, serverID, plus)
		if err != nil || n == int64(plus.size) {
			return err
		}
		owned, err := one(ctx, r, scanCount, op, q.countIn, serverID, plus.addrArg, plus.domArg)
		if err != nil || owned == int64(plus.size) {
			return err
		}
		return routeTaken(ctx, r, q, op, serverID, plus)
	})
}

// Route implements relay.Store. 'address' sorts before 'domain', so the
// address route wins. An argument that could not be a stored route's
// value matches nothing, like an empty one.
func (db *DB) Route(ctx context.Context, addressHash, domain string) (string, error) {
	if (relay.Route{Kind: relay.RouteAddress, Value: addressHash}).Validate() != nil {
		addressHash = ""
	}
	if (relay.Route{Kind: relay.RouteDomain, Value: domain}).Validate() != nil {
		domain = ""
	}
	if addressHash == "" && domain == "" {
		return "", notFound("route of no valid address hash or domain")
	}
	return one(ctx, db.reader(), scanString, "route",
		`SELECT r.server_id FROM relay_routes r JOIN relay_servers s ON s.id = r.server_id
		WHERE NOT s.disabled AND (r.kind = 'address' AND r.value = $1 OR r.kind = 'domain' AND r.value = $2)
		ORDER BY r.kind LIMIT 1`, addressHash, domain)
}

// TouchLink implements relay.Store.
func (db *DB) TouchLink(ctx context.Context, l relay.Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	_, err := db.exec(ctx, "touch link of relay server "+l.ServerID+" on relay "+l.RelayID,
		`INSERT INTO relay_links (server_id, relay_id, address, seen_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (server_id, relay_id) DO UPDATE SET address = excluded.address, seen_at = excluded.seen_at`,
		l.ServerID, l.RelayID, l.Address, micros(l.SeenAt))
	return err
}

// Links implements relay.Store.
func (db *DB) Links(ctx context.Context, serverID string, since time.Time) ([]relay.Link, error) {
	if err := relay.ValidServerID(serverID); err != nil {
		return nil, err
	}
	return list(ctx, db.reader(), func(s scanner) (relay.Link, error) {
		var l relay.Link
		return l, s.Scan(&l.ServerID, &l.RelayID, &l.Address, timeDest{&l.SeenAt})
	}, "links of relay server "+serverID, `SELECT server_id, relay_id, address, seen_at FROM relay_links
		WHERE server_id = $1 AND seen_at >= $2 ORDER BY address, relay_id`, serverID, micros(since))
}

// DropLink implements relay.Store.
func (db *DB) DropLink(ctx context.Context, serverID, relayID string) error {
	if err := relay.ValidServerID(serverID); err != nil {
		return err
	}
	_, err := db.exec(ctx, "drop link of relay server "+serverID+" on relay "+relayID,
		`DELETE FROM relay_links WHERE server_id = $1 AND relay_id = $2`, serverID, relayID)
	return err
}
