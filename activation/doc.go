// Package activation owns device activation: activation profiles (which
// platforms a user may activate, with which activation type), activation
// passwords, enrollment sessions, and the Service that walks a device
// through the seed's generic activation flow ("Data flow: Activating an
// Android device for MDM", steps 5–8; every platform adapter reuses it).
//
// Promises:
//
//   - An activation password is stored only as an HMAC keyed with a secret
//     kept outside the database, compared in constant time, expires, and is
//     consumed atomically with the issuing of the device certificate: it
//     activates one device, once.
//   - Failed attempts are counted per user; FailureLimit consecutive
//     failures lock the user's activations for LockDuration.
//   - An unknown login and a wrong password get the same answer in the same
//     time (no account enumeration).
//   - Each step is one transaction. A crash between steps leaves either an
//     open enrollment session (the device retries from the start with the
//     same password, which supersedes it) or an enrolled device.
package activation
