// Package websession is the web sign-in layer shared by the management
// console (administrators, RealmAdmin) and Self-Service (users,
// RealmUser): local passwords hashed with argon2id, sign-in with a
// per-principal lock and a per-address rate limit, server-side sessions
// in a __Host- cookie, synchronizer CSRF tokens, and the security headers
// of every page.
//
// What it promises, and why:
//
//   - Passwords are argon2id PHC strings (RFC 9106), checked in constant
//     time, re-hashed at sign-in when the parameters change. Credentials
//     live in a table of their own keyed by (realm, principal ID), so no
//     administrator or user table changes.
//   - A refused sign-in is ErrBadCredentials whatever the reason (wrong
//     password, unknown or locked principal) and takes about as long
//     (OWASP authentication cheat sheet). Failures are counted atomically
//     in the store; DefaultFailureLimit of them lock the principal for a
//     period that doubles with each lock. An address over its rate is
//     httpx.ErrRateLimited.
//   - Session IDs are 256 random bits; only their SHA-256 is stored. A
//     session ends after DefaultAbsoluteTimeout, or DefaultIdleTimeout
//     without a request, at sign-out, or with RevokeAll; every sign-in
//     gets a new ID (OWASP session management cheat sheet: fixation).
//   - Every state-changing request carries the HMAC of its session ID as
//     CSRF token and comes from our own origin (OWASP CSRF cheat sheet).
//
// The Store contracts are implemented by sqlstore and checked on both
// database backends by websessiontest.
package websession
