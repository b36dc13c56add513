// Package compliance evaluates devices against compliance profiles and
// walks the graduated ladder of actions for a device out of compliance.
//
// A compliance profile is a policy of kind compliance (package policy)
// whose settings are a Profile: rules a device must meet and a ladder of
// actions. ValidateSettings checks them for the policy service;
// ParseProfile turns them into a Profile.
//
//	{"rules": {"rooted_or_jailbroken": true,
//	           "min_os_version": {"android": "13", "ios": "17.4"},
//	           "blocked_models": ["Galaxy S7"],
//	           "required_apps": ["com.example.mail"],
//	           "out_of_contact_days": 30},
//	 "actions": [{"action": "monitor", "after_hours": 0},
//	             {"action": "prompt", "after_hours": 0, "count": 3, "interval_hours": 24},
//	             {"action": "untrust", "after_hours": 72},
//	             {"action": "wipe_work", "after_hours": 168}]}
//
// # Device facts
//
// Platform, OS version, model and last contact come from device.Device
// (the report's values stand in when a column is empty). Apps come from the
// software list of device.Inventory, matched by app ID or name. A device
// declares itself rooted or jailbroken with the info attribute "rooted" or
// "jailbroken" set to "true" (AttrRooted, AttrJailbroken). The platform
// adapters are to set it from what the platform attests (Play Integrity,
// Apple's attestation); no adapter does yet, so today the rule sees only
// devices that report it themselves. A device that
// has not reported yet is judged only on what is known without a report
// (OS version, model, contact, counted from enrollment when it was never
// seen), and a fact that cannot be read (an OS version without a number)
// breaks no rule.
//
// # What a device out of compliance experiences
//
// The Engine checks a device each time it reports (Check) and every device
// on a schedule (Sweep). The first check that finds a rule broken starts
// the clock (State.Since). From then on, each check takes, in order, every
// step of the ladder whose after_hours have passed since then:
//
//   - monitor: the violation is logged; the device notices nothing.
//   - prompt: the user gets a message naming the violations, count times,
//     interval_hours apart (at most one per check).
//   - untrust: State.Untrusted; the connectivity services (the mail
//     gateway, the app-data proxy, the tunnel: later issues) are to refuse
//     the device work resources. Today the flag is recorded and shown.
//   - quarantine: State.Quarantined; the device is to be cut off from every
//     work service (as for untrust: recorded and shown today).
//   - wipe_work: one command deletes the work data.
//   - wipe_device: one command deletes all data of the device.
//   - remove: the device is removed from the server; its certificate is
//     revoked and refused at its next request.
//
// A step is taken at the first check after it is due: the sweep interval
// is the granularity. As soon as a check finds the device compliant again
// the ladder resets: untrust and quarantine are lifted, prompts stop, and a
// wipe still queued is cancelled (when Commands can cancel). A change of
// the device's profile restarts its ladder from the bottom, so that steps
// of a new profile never fire on time accumulated under another.
//
// # Exactly once
//
// Every step is saved as taken (compare-and-swap on State.Version) before
// its effect runs, and each step is decided on the evaluation made in the
// same check. Of two concurrent checks of one device (a report racing the
// sweep, two Core processes) only one wins each save; the other re-reads
// and decides again, finding the step taken. So repeated or concurrent
// checks never queue a second wipe or prompt.
//
// A crash between the save and the command's enqueue loses that command:
// wipes are at most once. We chose this over at-least-once because a
// command cannot be recalled once delivered, and a wipe queued by a
// decision that was never recorded could be queued again later by a check
// that no longer has the evidence: a lost wipe is followed by the ladder's
// next step, while a duplicate or stale wipe destroys data. Command IDs
// cannot be made deterministic through command.Service.Send, which assigns
// them. When Send reports failure the step is un-recorded and retried at
// the next check, after a fresh evaluation: Send is one transaction, so a
// failure queued nothing.
//
// Remove is the exception: removing a removed device is harmless
// (errs.ErrNotFound), so it runs before its step is saved and a crash
// repeats it rather than losing it.
//
// A wipe is only ever queued by a check that has just found the device
// noncompliant, and a queued wipe is cancelled by the check that finds it
// compliant again, before that state is saved (a crash in between cancels
// again at the next check). A wipe the device fetched in between cannot be
// recalled.
package compliance
