package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/custos-uem/custos/errs"
)

// PostgreSQL SQLSTATE codes we act on.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgSerializationFail   = "40001"
	pgDeadlockDetected    = "40P01"
)

// dbErr wraps err from the driver for the operation op, mapping what the
// store contracts name: no row to errs.ErrNotFound, a unique violation to
// errs.ErrConflict, and a foreign-key violation (a reference to something
// that does not exist) to errs.ErrNotFound. The driver's message stays in
// the chain for the log.
func dbErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return notFound(op)
	case isUnique(err):
		return fmt.Errorf("sqlstore: %s: %w: %v", op, errs.ErrConflict, err)
	case isForeignKey(err):
		return fmt.Errorf("sqlstore: %s: %w: %v", op, errs.ErrNotFound, err)
	default:
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
}

// notFound is errs.ErrNotFound for op.
func notFound(op string) error {
	return fmt.Errorf("sqlstore: %s: %w", op, errs.ErrNotFound)
}

func isUnique(err error) bool {
	return sqliteCode(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) ||
		pgCode(err, pgUniqueViolation)
}

func isForeignKey(err error) bool {
	return sqliteCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) || pgCode(err, pgForeignKeyViolation)
}

// isRetryable reports a PostgreSQL transaction that lost a race with another
// one and may simply be run again: a deadlock (concurrent enrollments of the
// same user's hardware lock each other's device rows) or a serialization
// failure.
func isRetryable(err error) bool {
	return pgCode(err, pgDeadlockDetected, pgSerializationFail)
}

// sqliteCode reports whether err is a SQLite error with one of the extended
// result codes.
func sqliteCode(err error, codes ...int) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && slices.Contains(codes, e.Code())
}

// pgCode reports whether err is a PostgreSQL error with one of the SQLSTATE
// codes.
func pgCode(err error, codes ...string) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && slices.Contains(codes, e.Code)
}
