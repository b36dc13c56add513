package api

import "net/http"

// route is one entry of the route table: what Register puts on the
// router and what the OpenAPI document describes.
type route struct {
	Method, Path string
	OpID         string // OpenAPI operationId
	Summary      string
	Tag          string
	Handle       func(*API, *call) error
	// Public routes need no token (only the OpenAPI document).
	Public bool
	// Body names the request schema; BodyLimit is its size limit.
	Body         string
	BodyLimit    int64
	BodyOptional bool
	// Status is the answer's status on success; Resp names its schema
	// ("" for 204).
	Status int
	Resp   string
	// Query names the query parameters (see queryParams).
	Query []string
	// Action and Object name the audit entry of a mutating route; reads
	// have none.
	Action, Object string
}

func (r *route) pattern() string { return r.Method + " " + r.Path }

// The route table.
var routes = []route{
	{Method: "GET", Path: Prefix + "/openapi.json", OpID: "getOpenAPI", Summary: "This OpenAPI document", Tag: "meta", Public: true, Handle: (*API).openAPI, Status: http.StatusOK, Resp: "OpenAPI"},

	{Method: "GET", Path: Prefix + "/users", OpID: "listUsers", Summary: "List users in creation order (or find one by ?login=)", Tag: "users", Handle: (*API).listUsers, Status: http.StatusOK, Resp: "UserList", Query: []string{"after", "limit", "login"}},
	{Method: "POST", Path: Prefix + "/users", OpID: "createUser", Summary: "Create a local user", Tag: "users", Handle: (*API).createUser, Body: "UserCreate", BodyLimit: MaxUserBody, Status: http.StatusCreated, Resp: "User", Action: "user.create", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}", OpID: "getUser", Summary: "Get a user", Tag: "users", Handle: (*API).getUser, Status: http.StatusOK, Resp: "User"},
	{Method: "PATCH", Path: Prefix + "/users/{id}", OpID: "updateUser", Summary: "Change a user; activation_profile_id assigns a profile (\"\" unassigns)", Tag: "users", Handle: (*API).updateUser, Body: "UserPatch", BodyLimit: MaxUserBody, Status: http.StatusOK, Resp: "User", Action: "user.update", Object: "user"},
	{Method: "DELETE", Path: Prefix + "/users/{id}", OpID: "deleteUser", Summary: "Remove the user's devices (revoking them), then the user", Tag: "users", Handle: (*API).deleteUser, Status: http.StatusNoContent, Action: "user.delete", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}/effective-profile", OpID: "getEffectiveProfile", Summary: "The activation profile that applies to the user, and where it comes from", Tag: "users", Handle: (*API).userEffectiveProfile, Status: http.StatusOK, Resp: "EffectiveProfile"},
	{Method: "POST", Path: Prefix + "/users/{id}/activation-passwords", OpID: "setActivationPassword", Summary: "Set or generate the user's activation password (shown once, here); replaces unused ones", Tag: "users", Handle: (*API).setPassword, Body: "PasswordCreate", BodyLimit: MaxPasswordBody, BodyOptional: true, Status: http.StatusCreated, Resp: "PasswordCreated", Action: "user.password.set", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}/activation-passwords", OpID: "listActivationPasswords", Summary: "The user's activation passwords, newest first (metadata only)", Tag: "users", Handle: (*API).listPasswords, Status: http.StatusOK, Resp: "PasswordList"},
	{Method: "DELETE", Path: Prefix + "/users/{id}/activation-passwords", OpID: "revokeActivationPasswords", Summary: "Revoke the user's unused activation passwords", Tag: "users", Handle: (*API).revokePasswords, Status: http.StatusOK, Resp: "Revoked", Action: "user.password.revoke", Object: "user"},

	{Method: "GET", Path: Prefix + "/groups", OpID: "listGroups", Summary: "List groups", Tag: "groups", Handle: (*API).listGroups, Status: http.StatusOK, Resp: "GroupList", Query: []string{"after", "limit"}},
	{Method: "POST", Path: Prefix + "/groups", OpID: "createGroup", Summary: "Create a group", Tag: "groups", Handle: (*API).createGroup, Body: "GroupCreate", BodyLimit: MaxGroupBody, Status: http.StatusCreated, Resp: "Group", Action: "group.create", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}", OpID: "getGroup", Summary: "Get a group", Tag: "groups", Handle: (*API).getGroup, Status: http.StatusOK, Resp: "Group"},
	{Method: "PATCH", Path: Prefix + "/groups/{id}", OpID: "updateGroup", Summary: "Change a group; activation_profile_id assigns a profile (\"\" unassigns)", Tag: "groups", Handle: (*API).updateGroup, Body: "GroupPatch", BodyLimit: MaxGroupBody, Status: http.StatusOK, Resp: "Group", Action: "group.update", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}", OpID: "deleteGroup", Summary: "Delete a group (its members stay)", Tag: "groups", Handle: (*API).deleteGroup, Status: http.StatusNoContent, Action: "group.delete", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}/members", OpID: "listGroupMembers", Summary: "The users of a group", Tag: "groups", Handle: (*API).listMembers, Status: http.StatusOK, Resp: "UserList"},
	{Method: "POST", Path: Prefix + "/groups/{id}/members", OpID: "addGroupMember", Summary: "Add a user to a group (adding twice is not an error)", Tag: "groups", Handle: (*API).addMember, Body: "MemberAdd", BodyLimit: MaxMemberBody, Status: http.StatusNoContent, Action: "group.member.add", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}/members/{userID}", OpID: "removeGroupMember", Summary: "Remove a user from a group", Tag: "groups", Handle: (*API).removeMember, Status: http.StatusNoContent, Action: "group.member.remove", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}/subgroups", OpID: "listSubgroups", Summary: "The direct subgroups of a group", Tag: "groups", Handle: (*API).listSubgroups, Status: http.StatusOK, Resp: "GroupList"},
	{Method: "POST", Path: Prefix + "/groups/{id}/subgroups", OpID: "addSubgroup", Summary: "Nest a group: its members (at any depth) get what this group has; a cycle is 400 group_cycle", Tag: "groups", Handle: (*API).addSubgroup, Body: "SubgroupAdd", BodyLimit: MaxMemberBody, Status: http.StatusNoContent, Action: "group.subgroup.add", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}/subgroups/{childID}", OpID: "removeSubgroup", Summary: "Take a subgroup out of a group", Tag: "groups", Handle: (*API).removeSubgroup, Status: http.StatusNoContent, Action: "group.subgroup.remove", Object: "group"},

	{Method: "GET", Path: Prefix + "/activation-profiles", OpID: "listActivationProfiles", Summary: "List activation profiles by rank, then name", Tag: "activation", Handle: (*API).listProfiles, Status: http.StatusOK, Resp: "ProfileList"},
	{Method: "POST", Path: Prefix + "/activation-profiles", OpID: "createActivationProfile", Summary: "Create an activation profile", Tag: "activation", Handle: (*API).createProfile, Body: "ProfileCreate", BodyLimit: MaxProfileBody, Status: http.StatusCreated, Resp: "Profile", Action: "profile.create", Object: "activation_profile"},
	{Method: "GET", Path: Prefix + "/activation-profiles/{id}", OpID: "getActivationProfile", Summary: "Get an activation profile", Tag: "activation", Handle: (*API).getProfile, Status: http.StatusOK, Resp: "Profile"},
	{Method: "PATCH", Path: Prefix + "/activation-profiles/{id}", OpID: "updateActivationProfile", Summary: "Change an activation profile (types, when present, replaces the whole map)", Tag: "activation", Handle: (*API).updateProfile, Body: "ProfilePatch", BodyLimit: MaxProfileBody, Status: http.StatusOK, Resp: "Profile", Action: "profile.update", Object: "activation_profile"},
	{Method: "DELETE", Path: Prefix + "/activation-profiles/{id}", OpID: "deleteActivationProfile", Summary: "Delete an activation profile and its assignments (not the default one)", Tag: "activation", Handle: (*API).deleteProfile, Status: http.StatusNoContent, Action: "profile.delete", Object: "activation_profile"},
	{Method: "GET", Path: Prefix + "/activation-types", OpID: "listActivationTypes", Summary: "Activation types and the platforms each applies to", Tag: "activation", Handle: (*API).listTypes, Status: http.StatusOK, Resp: "ActivationTypes"},

	{Method: "GET", Path: Prefix + "/devices", OpID: "listDevices", Summary: "List devices with their user's email", Tag: "devices", Handle: (*API).listDevices, Status: http.StatusOK, Resp: "DeviceList", Query: []string{"user", "state", "after", "limit"}},
	{Method: "GET", Path: Prefix + "/devices/{id}", OpID: "getDevice", Summary: "Get a device with its last inventory report", Tag: "devices", Handle: (*API).getDevice, Status: http.StatusOK, Resp: "DeviceDetail"},
	{Method: "DELETE", Path: Prefix + "/devices/{id}", OpID: "removeDevice", Summary: "Remove a device: its certificate is revoked and refused at its next request", Tag: "devices", Handle: (*API).removeDevice, Status: http.StatusNoContent, Action: "device.remove", Object: "device"},
	{Method: "GET", Path: Prefix + "/devices/{id}/configuration", OpID: "getDeviceConfiguration", Summary: "The device's effective configuration (secrets redacted), each item pending, applied or failed", Tag: "devices", Handle: (*API).deviceConfiguration, Status: http.StatusOK, Resp: "DeviceConfiguration"},
	{Method: "GET", Path: Prefix + "/devices/{id}/compliance", OpID: "getDeviceCompliance", Summary: "The device's compliance state: status, violations, ladder step, untrusted, quarantined", Tag: "devices", Handle: (*API).deviceCompliance, Status: http.StatusOK, Resp: "ComplianceState"},
	{Method: "GET", Path: Prefix + "/devices/{id}/commands", OpID: "listDeviceCommands", Summary: "The device's commands: ?status=open is its queue, ?status=final its history", Tag: "commands", Handle: (*API).listDeviceCommands, Status: http.StatusOK, Resp: "CommandList", Query: []string{"status", "after", "limit"}},
	{Method: "POST", Path: Prefix + "/devices/{id}/commands", OpID: "sendDeviceCommand", Summary: "Queue a command for the device (204 for a sync_config already pending)", Tag: "commands", Handle: (*API).sendCommand, Body: "CommandCreate", BodyLimit: MaxCommandBody, Status: http.StatusCreated, Resp: "Command", Action: "command.send", Object: "command"},

	{Method: "POST", Path: Prefix + "/commands", OpID: "sendCommands", Summary: "Queue one command for many devices in one transaction: all or none (a device unknown or outside your scope refuses the whole call)", Tag: "commands", Handle: (*API).sendBulk, Body: "CommandBulk", BodyLimit: MaxBulkBody, Status: http.StatusCreated, Resp: "CommandsQueued", Action: "command.send_bulk", Object: "command"},
	{Method: "GET", Path: Prefix + "/commands/{id}", OpID: "getCommand", Summary: "Get a command with its result", Tag: "commands", Handle: (*API).getCommand, Status: http.StatusOK, Resp: "Command"},
	{Method: "POST", Path: Prefix + "/commands/{id}/cancel", OpID: "cancelCommand", Summary: "Cancel an open command (409 command_final once it completed)", Tag: "commands", Handle: (*API).cancelCommand, Status: http.StatusOK, Resp: "Command", Action: "command.cancel", Object: "command"},

	{Method: "GET", Path: Prefix + "/policies", OpID: "listPolicies", Summary: "List IT policies and profiles (secrets redacted)", Tag: "policies", Handle: (*API).listPolicies, Status: http.StatusOK, Resp: "PolicyList", Query: []string{"kind", "after", "limit"}},
	{Method: "POST", Path: Prefix + "/policies", OpID: "createPolicy", Summary: "Create a policy; invalid settings are 400 invalid_policy with one field per problem", Tag: "policies", Handle: (*API).createPolicy, Body: "PolicyCreate", BodyLimit: MaxPolicyBody, Status: http.StatusCreated, Resp: "Policy", Action: "policy.create", Object: "policy"},
	{Method: "GET", Path: Prefix + "/policies/{id}", OpID: "getPolicy", Summary: "Get a policy (secrets redacted)", Tag: "policies", Handle: (*API).getPolicy, Status: http.StatusOK, Resp: "Policy"},
	{Method: "PATCH", Path: Prefix + "/policies/{id}", OpID: "updatePolicy", Summary: "Change a policy; a redacted secret sent back unchanged keeps the stored one", Tag: "policies", Handle: (*API).updatePolicy, Body: "PolicyPatch", BodyLimit: MaxPolicyBody, Status: http.StatusOK, Resp: "Policy", Action: "policy.update", Object: "policy"},
	{Method: "DELETE", Path: Prefix + "/policies/{id}", OpID: "deletePolicy", Summary: "Delete a policy and its assignments", Tag: "policies", Handle: (*API).deletePolicy, Status: http.StatusNoContent, Action: "policy.delete", Object: "policy"},
	{Method: "GET", Path: Prefix + "/policies/{id}/assignments", OpID: "listPolicyAssignments", Summary: "Who a policy is assigned to: users, then groups", Tag: "policies", Handle: (*API).listAssignments, Status: http.StatusOK, Resp: "AssignmentList"},
	{Method: "POST", Path: Prefix + "/policies/{id}/assignments", OpID: "assignPolicy", Summary: "Assign a policy to a user or a group (assigning twice is not an error)", Tag: "policies", Handle: (*API).assignPolicy, Body: "AssignmentCreate", BodyLimit: MaxAssignmentBody, Status: http.StatusNoContent, Action: "policy.assign", Object: "policy"},
	{Method: "DELETE", Path: Prefix + "/policies/{id}/assignments/{targetKind}/{targetID}", OpID: "unassignPolicy", Summary: "Remove an assignment (targetKind user or group)", Tag: "policies", Handle: (*API).unassignPolicy, Status: http.StatusNoContent, Action: "policy.unassign", Object: "policy"},

	{Method: "GET", Path: Prefix + "/admins", OpID: "listAdmins", Summary: "List administrators with their scopes", Tag: "admins", Handle: (*API).listAdmins, Status: http.StatusOK, Resp: "AdminList"},
	{Method: "POST", Path: Prefix + "/admins", OpID: "createAdmin", Summary: "Create an administrator, optionally limited to the devices of some groups' users, with a first API token (shown once, here); only for administrators without a scope", Tag: "admins", Handle: (*API).createAdmin, Body: "AdminCreate", BodyLimit: MaxAdminBody, Status: http.StatusCreated, Resp: "AdminCreated", Action: "admin.create", Object: "admin"},

	{Method: "GET", Path: Prefix + "/tokens", OpID: "listTokens", Summary: "List API tokens, revoked ones too (never their values)", Tag: "tokens", Handle: (*API).listTokens, Status: http.StatusOK, Resp: "TokenList"},
	{Method: "POST", Path: Prefix + "/tokens", OpID: "createToken", Summary: "Create an API token for the calling administrator (its value is shown once, here)", Tag: "tokens", Handle: (*API).createToken, Body: "TokenCreate", BodyLimit: MaxTokenBody, Status: http.StatusCreated, Resp: "TokenCreated", Action: "token.create", Object: "token"},
	{Method: "DELETE", Path: Prefix + "/tokens/{id}", OpID: "revokeToken", Summary: "Revoke an API token", Tag: "tokens", Handle: (*API).revokeToken, Status: http.StatusNoContent, Action: "token.revoke", Object: "token"},

	{Method: "GET", Path: Prefix + "/audit", OpID: "listAudit", Summary: "The audit trail, newest first", Tag: "audit", Handle: (*API).listAudit, Status: http.StatusOK, Resp: "AuditList", Query: []string{"actor", "action", "object", "since", "before", "limit"}},
}

// queryParams describes every query parameter a route may name.
var queryParams = map[string]struct{ Type, Desc string }{
	"after":  {"string", "return items after this ID: the next of the previous page"},
	"limit":  {"integer", "items per page, 1 to 500 (default 100)"},
	"login":  {"string", "find the user with this email address or username (any case)"},
	"user":   {"string", "only this user's devices (user ID)"},
	"state":  {"string", "only devices in this state: activating, enrolled, active or removed"},
	"actor":  {"string", "only entries by this administrator ID (or \"system\")"},
	"action": {"string", "only entries with this action, e.g. user.create"},
	"object": {"string", "only entries about this object ID"},
	"since":  {"string", "only entries at or after this RFC 3339 time"},
	"status": {"string", "open (the queue: pending, sent, not_now) or final (the history)"},
	"kind":   {"string", "only policies of this kind"},
	"before": {"integer", "return entries older than this entry ID: the next of the previous page"},
}

func (a *API) openAPI(c *call) error {
	return c.reply(http.StatusOK, rawJSON(a.openapi))
}
