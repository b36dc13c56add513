// Package agent is the reference agent: the device side of the Custos agent
// protocol (the seed's "UEM Client"). It walks the seed's "Data flow:
// Activating an Android device for MDM", steps 5–12, against a Core:
//
//	Activate   step 5–6   login + activation password + device identity → enrollment session
//	           step 7–8   fresh P-256 key, PKCS#10 CSR → client certificate + CA (saved in a Store)
//	           step 9–10  mutual TLS from here on: device and software information → configuration
//	           step 11–12 configuration applied (Applier) → acknowledgment → device "active"
//	Run        stays enrolled: checks in every poll interval (jittered), re-acknowledges
//	           changed configurations, backs off on failure, stops when the Core
//	           refuses the certificate (the device was removed).
//	Commands   one command per round trip until idle, each command ID run once
//	           (an Executor; sync_config is a check-in), results kept until taken.
//	           Run drains them after each check-in, on Wake (a push arrived) and
//	           when the long poll of /device/v1/wait says something is pending.
//
// What the device is comes from a Collector, what it applies from an Applier
// and what runs its commands from an Executor (agent/linux for a real Linux
// system; agent/sim simulates Android, iOS, Windows and Linux devices); what
// it remembers lives in a Store (a directory, or memory for benchmarks with
// many agents in one process). A Client has no global state: tests and
// benchmarks run hundreds side by side.
package agent
