// Package errs gives every error in Custos one of a handful of kinds, so that
// the HTTP layer can map it to a status code in one place (httpx.WriteError)
// while the log keeps the cause.
//
// An *Error carries two audiences: Code and Message are stable and safe to
// show to a client; Cause is for the log only and never leaves the process.
// Wrap with %w at each layer; Kind and Code are found with errors.As.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for its client. The zero Kind is Internal.
type Kind int

const (
	Internal        Kind = iota // a bug or an unexpected failure: 500
	Invalid                     // the request is malformed or breaks a rule: 400
	Unauthenticated             // no or bad credentials: 401
	Forbidden                   // authenticated but not allowed: 403
	NotFound                    // no such object for this caller: 404
	Conflict                    // the object exists or changed underneath: 409
	TooLarge                    // the body or a field is over its named limit: 413
	RateLimited                 // too many attempts: 429
	Unavailable                 // a dependency is down; try again later: 503
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "forbidden", "not_found", "conflict", "too_large", "rate_limited", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an error with a kind, a stable machine-readable code, a message
// safe for clients and an optional cause kept for the log.
type Error struct {
	Kind    Kind
	Code    string // stable, snake_case, e.g. "activation_password_invalid"
	Message string // safe to show to the client
	Fields  map[string]string
	Cause   error // for the log only
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// E builds an *Error.
func E(kind Kind, code, msg string) *Error { return &Error{Kind: kind, Code: code, Message: msg} }

// Wrap builds an *Error that keeps cause for the log.
func Wrap(kind Kind, code, msg string, cause error) *Error {
	return &Error{Kind: kind, Code: code, Message: msg, Cause: cause}
}

// Sentinels for store contracts. Stores return these (possibly wrapped);
// services translate them into domain errors with their own codes.
var (
	ErrNotFound = E(NotFound, "not_found", "not found")
	ErrConflict = E(Conflict, "conflict", "already exists")
)

// KindOf returns the kind of err: the kind of the outermost *Error in its
// chain, or Internal for any other non-nil error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err has the given kind.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Public returns the code, message and field errors that may be shown to a
// client. Internal errors are reduced to a generic message.
func Public(err error) (code, msg string, fields map[string]string) {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Code, e.Message, e.Fields
	}
	return "internal", "internal error", nil
}
