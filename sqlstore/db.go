package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Backend names, as returned by (*DB).Backend.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// FileName is the SQLite database file inside the data directory.
const FileName = "custos.db"

const (
	// sqliteBusyTimeout is how long a SQLite connection waits for a lock
	// held by another process (another tool on the same file, a backup)
	// before failing with SQLITE_BUSY. Within this process writes queue for
	// the single writer (see writeQueue) and never wait here.
	sqliteBusyTimeout = 5 * time.Second
	// sqliteMinReaders is the floor of the read pool; reads are short, so a
	// few connections more than cores keep them from queueing behind one
	// another on small machines.
	sqliteMinReaders = 4
	// postgresMaxConns bounds one process's share of the server's
	// max_connections (100 by default), leaving room for several Core
	// processes on one database. The grouped statements' pool
	// (pgGroupConns) and the LISTEN connection come on top.
	postgresMaxConns = 20
	// postgresIdleTime closes pooled connections nobody used for a while.
	postgresIdleTime = 5 * time.Minute
)

// DB is the Custos database. It implements every store interface; its
// methods are safe for concurrent use.
type DB struct {
	backend string
	w       *sql.DB // write transactions; on SQLite a single connection
	r       *sql.DB // reads; on PostgreSQL the same pool as w
	ws, rs  *stmtCache
	queue   *writeQueue // SQLite's writer; nil on PostgreSQL
	// PostgreSQL's grouped statements (see groupQueue) and their pool; nil
	// on SQLite.
	groups     *sql.DB
	gs         *stmtCache
	trips      *groupQueue[*tripReq]     // command round trips
	identities *groupQueue[*identityReq] // Apple requests' identities
	lock       *os.File                  // SQLite: held (flock) while open, so one process owns the file
	dsn        string                    // PostgreSQL: the URL, for the LISTEN connection
	log        *slog.Logger
}

// Open opens the database dsn names and applies the embedded migrations it
// lacks. dsn is a PostgreSQL URL (postgres:// or postgresql://), a SQLite
// file as sqlite://PATH or a plain PATH, or empty for the SQLite file
// FileName in dataDir (created 0700 if missing). A nil log discards.
func Open(ctx context.Context, dsn, dataDir string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var db *DB
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		db, err = openPostgres(ctx, dsn)
	case strings.Contains(dsn, "://") && !strings.HasPrefix(dsn, "sqlite://"):
		return nil, fmt.Errorf("sqlstore: unsupported database URL %q: use postgres://… or a SQLite file path", redactDSN(dsn))
	case strings.Contains(dsn, "=") && !strings.HasPrefix(dsn, "sqlite://"):
		// "host=… dbname=…" would otherwise become a SQLite file of that
		// name, and the operator would run on the wrong database.
		return nil, errors.New("sqlstore: PostgreSQL keyword/value connection strings are not supported: use a URL, postgres://user@host:5432/dbname")
	default:
		db, err = openSQLite(ctx, dsn, dataDir)
	}
	if err != nil {
		return nil, err
	}
	db.log = log
	if err := db.migrate(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open postgres: %w", err)
	}
	pool.SetMaxOpenConns(postgresMaxConns)
	pool.SetMaxIdleConns(postgresMaxConns)
	pool.SetConnMaxIdleTime(postgresIdleTime)
	if err := pool.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: connect to postgres: %w", err), pool.Close())
	}
	stmts := &stmtCache{pool: pool}
	db := &DB{backend: Postgres, w: pool, r: pool, ws: stmts, rs: stmts, dsn: dsn}
	// Grouped statements (see groupQueue) run on connections of their own,
	// one per worker, with generic plans forced: each is always the same
	// shape over arrays of any length, and PostgreSQL would otherwise plan
	// it anew at every execution (custom plans), which costs more than
	// running it. A generic plan lives as long as its connection, and the
	// one made while a table was small (a new installation) was a
	// sequential scan and a hash join, kept while the table grew to
	// millions of rows. Every grouped statement looks up at most
	// maxPGGroup keys by index, so these connections are denied the plans
	// that read whole tables or indexes: only nested loops over index
	// lookups remain, whatever the statistics said when the plan was made.
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open postgres: %w", err), pool.Close())
	}
	q := u.Query()
	q.Set("plan_cache_mode", "force_generic_plan")
	for _, p := range []string{"enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"} {
		q.Set(p, "off")
	}
	u.RawQuery = q.Encode()
	groups, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open postgres: %w", err), pool.Close())
	}
	groups.SetMaxOpenConns(pgGroupConns)
	groups.SetMaxIdleConns(pgGroupConns)
	groups.SetConnMaxIdleTime(postgresIdleTime)
	db.groups, db.gs = groups, &stmtCache{pool: groups}
	db.trips = newGroupQueue(pgGroupWorkers, maxPGGroup, db.runTrips)
	db.identities = newGroupQueue(pgGroupWorkers, maxPGGroup, db.runIdentities)
	return db, nil
}

// sqlitePath resolves the dsn forms Open accepts for SQLite to a file path.
func sqlitePath(dsn, dataDir string) (string, error) {
	path := strings.TrimPrefix(dsn, "sqlite://")
	if path == "" {
		if dataDir != "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return "", fmt.Errorf("sqlstore: data directory: %w", err)
			}
		}
		path = filepath.Join(dataDir, FileName)
	}
	// The driver takes everything after the first '?' as its parameters.
	if strings.Contains(path, "?") {
		return "", fmt.Errorf("sqlstore: sqlite path %q must not contain '?'", path)
	}
	return path, nil
}

func openSQLite(ctx context.Context, dsn, dataDir string) (*DB, error) {
	path, err := sqlitePath(dsn, dataDir)
	if err != nil {
		return nil, err
	}
	lock, err := lockSQLite(path)
	if err != nil {
		return nil, err
	}
	db, err := openSQLiteFile(ctx, path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	db.lock = lock
	return db, nil
}

func openSQLiteFile(ctx context.Context, path string) (*DB, error) {
	// Create the file 0600 before SQLite does (it would use 0644): it holds
	// password and token hashes. SQLite gives its -wal and -shm files the
	// same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlstore: create %s: %w", path, err)
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())
	// WAL lets readers run during a write; synchronous=NORMAL is durable
	// against process crashes and consistent after power loss (the last
	// commits may be lost); _txlock=immediate takes the write lock at BEGIN,
	// so a transaction never fails halfway upgrading from a read lock;
	// temp_store=MEMORY keeps the savepoint journals of a write batch (see
	// writeQueue) off the disk.
	w, err := openSQLitePool(ctx, path+"?"+busy+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)&_txlock=immediate", 1)
	if err != nil {
		return nil, err
	}
	// The writer has set WAL mode (it is stored in the file) before the
	// first reader connects. query_only makes a write routed here by
	// mistake fail instead of bypassing the writer queue.
	r, err := openSQLitePool(ctx, path+"?"+busy+"&_pragma=query_only(1)", max(sqliteMinReaders, runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}
	db := &DB{backend: SQLite, w: w, r: r, ws: &stmtCache{pool: w}, rs: &stmtCache{pool: r}}
	db.queue = newWriteQueue(db)
	return db, nil
}

func openSQLitePool(ctx context.Context, dsn string, conns int) (*sql.DB, error) {
	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	pool.SetMaxOpenConns(conns)
	// Keep every connection: a SQLite connection is cheap to keep, and its
	// page cache and prepared statements are worth keeping.
	pool.SetMaxIdleConns(conns)
	if err := pool.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlstore: open sqlite: %w", err), pool.Close())
	}
	return pool, nil
}

// Backend returns SQLite or Postgres.
func (db *DB) Backend() string { return db.backend }

// Close waits for the writes in progress, then closes the connection
// pools.
func (db *DB) Close() error {
	if db.queue != nil {
		db.queue.close()
	}
	var err error
	if db.trips != nil {
		db.trips.close()
		db.identities.close()
		err = db.groups.Close()
	}
	if db.r == db.w {
		err = errors.Join(err, db.w.Close())
	} else {
		err = errors.Join(err, db.r.Close(), db.w.Close())
	}
	if db.lock != nil {
		err = errors.Join(err, db.lock.Close()) // closing releases the flock
		db.lock = nil
	}
	return err
}

// lockSQLite takes an exclusive advisory lock next to the database file.
// The single-writer queue is correct only if this process is the only
// writer: a second Core on the same file must fail at start, not contend
// at every write.
func lockSQLite(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlstore: %s is in use by another process (is another custos serve running on this data directory?): %w", path, err)
	}
	return f, nil
}

// redactDSN drops the password of a URL-shaped DSN for error messages.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// Ping checks that the database answers, on every pool.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping readers: %w", err)
	}
	return nil
}

// Collector exports the connection pool statistics (open, in use, idle
// connections, waits) as Prometheus metrics, one db_name label per pool:
// "postgres", or "sqlite_writer" and "sqlite_reader".
func (db *DB) Collector() prometheus.Collector {
	if db.r == db.w {
		return collectors.NewDBStatsCollector(db.w, db.backend)
	}
	return multiCollector{
		collectors.NewDBStatsCollector(db.w, db.backend+"_writer"),
		collectors.NewDBStatsCollector(db.r, db.backend+"_reader"),
	}
}

// multiCollector registers several collectors as one.
type multiCollector []prometheus.Collector

func (m multiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m {
		c.Describe(ch)
	}
}

func (m multiCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m {
		c.Collect(ch)
	}
}
