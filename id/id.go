// Package id makes the identifiers of every Custos object: UUIDv7, whose
// text sorts in creation order, so listings in ID order are in creation
// order and page with a plain "after this ID".
package id

import "github.com/google/uuid"

// New returns a new time-ordered identifier.
func New() string { return uuid.Must(uuid.NewV7()).String() }
