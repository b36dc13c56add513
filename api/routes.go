package api

import (
	"net/http"

	"github.com/custos-uem/custos/auth"
)

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
	// Permission is what the administrator's role must have for the route
	// to run at all (checked before the handler; a refusal is 403
	// permission_denied and an audit entry "<action>.denied"). Every
	// route but the public ones names one: a route without is refused to
	// everybody (deny by default). Some handlers check a second one (a
	// wipe command needs auth.WipeSend as well).
	Permission auth.Permission
}

func (r *route) pattern() string { return r.Method + " " + r.Path }

// auditAction names the route in the audit trail: its Action, or for a
// read its operation ID (listAudit …).
func (r *route) auditAction() string {
	if r.Action != "" {
		return r.Action
	}
	return r.OpID
}

// The route table. The Apple settings routes (api/apple.go, appleRoutes)
// are appended to it at init.
var routes = []route{
	{Method: "GET", Path: Prefix + "/openapi.json", OpID: "getOpenAPI", Summary: "This OpenAPI document", Tag: "meta", Public: true, Handle: (*API).openAPI, Status: http.StatusOK, Resp: "OpenAPI"},

	{Method: "GET", Path: Prefix + "/users", OpID: "listUsers", Permission: auth.UsersRead, Summary: "List users in creation order (or find one by ?login=)", Tag: "users", Handle: (*API).listUsers, Status: http.StatusOK, Resp: "UserList", Query: []string{"after", "limit", "login"}},
	{Method: "POST", Path: Prefix + "/users", OpID: "createUser", Permission: auth.UsersWrite, Summary: "Create a local user", Tag: "users", Handle: (*API).createUser, Body: "UserCreate", BodyLimit: MaxUserBody, Status: http.StatusCreated, Resp: "User", Action: "user.create", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}", OpID: "getUser", Permission: auth.UsersRead, Summary: "Get a user", Tag: "users", Handle: (*API).getUser, Status: http.StatusOK, Resp: "User"},
	{Method: "PATCH", Path: Prefix + "/users/{id}", OpID: "updateUser", Permission: auth.UsersWrite, Summary: "Change a user; activation_profile_id assigns a profile (\"\" unassigns)", Tag: "users", Handle: (*API).updateUser, Body: "UserPatch", BodyLimit: MaxUserBody, Status: http.StatusOK, Resp: "User", Action: "user.update", Object: "user"},
	{Method: "DELETE", Path: Prefix + "/users/{id}", OpID: "deleteUser", Permission: auth.UsersWrite, Summary: "Remove the user's devices (revoking them), then the user", Tag: "users", Handle: (*API).deleteUser, Status: http.StatusNoContent, Action: "user.delete", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}/effective-profile", OpID: "getEffectiveProfile", Permission: auth.UsersRead, Summary: "The activation profile that applies to the user, and where it comes from", Tag: "users", Handle: (*API).userEffectiveProfile, Status: http.StatusOK, Resp: "EffectiveProfile"},
	{Method: "POST", Path: Prefix + "/users/{id}/activation-passwords", OpID: "setActivationPassword", Permission: auth.PasswordsWrite, Summary: "Set or generate the user's activation password (shown once, here); replaces unused ones", Tag: "users", Handle: (*API).setPassword, Body: "PasswordCreate", BodyLimit: MaxPasswordBody, BodyOptional: true, Status: http.StatusCreated, Resp: "PasswordCreated", Action: "user.password.set", Object: "user"},
	{Method: "GET", Path: Prefix + "/users/{id}/activation-passwords", OpID: "listActivationPasswords", Permission: auth.UsersRead, Summary: "The user's activation passwords, newest first (metadata only)", Tag: "users", Handle: (*API).listPasswords, Status: http.StatusOK, Resp: "PasswordList"},
	{Method: "DELETE", Path: Prefix + "/users/{id}/activation-passwords", OpID: "revokeActivationPasswords", Permission: auth.PasswordsWrite, Summary: "Revoke the user's unused activation passwords", Tag: "users", Handle: (*API).revokePasswords, Status: http.StatusOK, Resp: "Revoked", Action: "user.password.revoke", Object: "user"},

	{Method: "GET", Path: Prefix + "/groups", OpID: "listGroups", Permission: auth.GroupsRead, Summary: "List groups", Tag: "groups", Handle: (*API).listGroups, Status: http.StatusOK, Resp: "GroupList", Query: []string{"after", "limit"}},
	{Method: "POST", Path: Prefix + "/groups", OpID: "createGroup", Permission: auth.GroupsWrite, Summary: "Create a group", Tag: "groups", Handle: (*API).createGroup, Body: "GroupCreate", BodyLimit: MaxGroupBody, Status: http.StatusCreated, Resp: "Group", Action: "group.create", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}", OpID: "getGroup", Permission: auth.GroupsRead, Summary: "Get a group", Tag: "groups", Handle: (*API).getGroup, Status: http.StatusOK, Resp: "Group"},
	{Method: "PATCH", Path: Prefix + "/groups/{id}", OpID: "updateGroup", Permission: auth.GroupsWrite, Summary: "Change a group; activation_profile_id assigns a profile (\"\" unassigns)", Tag: "groups", Handle: (*API).updateGroup, Body: "GroupPatch", BodyLimit: MaxGroupBody, Status: http.StatusOK, Resp: "Group", Action: "group.update", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}", OpID: "deleteGroup", Permission: auth.GroupsWrite, Summary: "Delete a group (its members stay)", Tag: "groups", Handle: (*API).deleteGroup, Status: http.StatusNoContent, Action: "group.delete", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}/members", OpID: "listGroupMembers", Permission: auth.GroupsRead, Summary: "The users of a group", Tag: "groups", Handle: (*API).listMembers, Status: http.StatusOK, Resp: "UserList"},
	{Method: "POST", Path: Prefix + "/groups/{id}/members", OpID: "addGroupMember", Permission: auth.GroupsWrite, Summary: "Add a user to a group (adding twice is not an error)", Tag: "groups", Handle: (*API).addMember, Body: "MemberAdd", BodyLimit: MaxMemberBody, Status: http.StatusNoContent, Action: "group.member.add", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}/members/{userID}", OpID: "removeGroupMember", Permission: auth.GroupsWrite, Summary: "Remove a user from a group", Tag: "groups", Handle: (*API).removeMember, Status: http.StatusNoContent, Action: "group.member.remove", Object: "group"},
	{Method: "GET", Path: Prefix + "/groups/{id}/subgroups", OpID: "listSubgroups", Permission: auth.GroupsRead, Summary: "The direct subgroups of a group", Tag: "groups", Handle: (*API).listSubgroups, Status: http.StatusOK, Resp: "GroupList"},
	{Method: "POST", Path: Prefix + "/groups/{id}/subgroups", OpID: "addSubgroup", Permission: auth.GroupsWrite, Summary: "Nest a group: its members (at any depth) get what this group has; a cycle is 400 group_cycle", Tag: "groups", Handle: (*API).addSubgroup, Body: "SubgroupAdd", BodyLimit: MaxMemberBody, Status: http.StatusNoContent, Action: "group.subgroup.add", Object: "group"},
	{Method: "DELETE", Path: Prefix + "/groups/{id}/subgroups/{childID}", OpID: "removeSubgroup", Permission: auth.GroupsWrite, Summary: "Take a subgroup out of a group", Tag: "groups", Handle: (*API).removeSubgroup, Status: http.StatusNoContent, Action: "group.subgroup.remove", Object: "group"},

	{Method: "GET", Path: Prefix + "/activation-profiles", OpID: "listActivationProfiles", Permission: auth.ProfilesRead, Summary: "List activation profiles by rank, then name", Tag: "activation", Handle: (*API).listProfiles, Status: http.StatusOK, Resp: "ProfileList"},
	{Method: "POST", Path: Prefix + "/activation-profiles", OpID: "createActivationProfile", Permission: auth.ProfilesWrite, Summary: "Create an activation profile", Tag: "activation", Handle: (*API).createProfile, Body: "ProfileCreate", BodyLimit: MaxProfileBody, Status: http.StatusCreated, Resp: "Profile", Action: "profile.create", Object: "activation_profile"},
	{Method: "GET", Path: Prefix + "/activation-profiles/{id}", OpID: "getActivationProfile", Permission: auth.ProfilesRead, Summary: "Get an activation profile", Tag: "activation", Handle: (*API).getProfile, Status: http.StatusOK, Resp: "Profile"},
	{Method: "PATCH", Path: Prefix + "/activation-profiles/{id}", OpID: "updateActivationProfile", Permission: auth.ProfilesWrite, Summary: "Change an activation profile (types, when present, replaces the whole map)", Tag: "activation", Handle: (*API).updateProfile, Body: "ProfilePatch", BodyLimit: MaxProfileBody, Status: http.StatusOK, Resp: "Profile", Action: "profile.update", Object: "activation_profile"},
	{Method: "DELETE", Path: Prefix + "/activation-profiles/{id}", OpID: "deleteActivationProfile", Permission: auth.ProfilesWrite, Summary: "Delete an activation profile and its assignments (not the default one)", Tag: "activation", Handle: (*API).deleteProfile, Status: http.StatusNoContent, Action: "profile.delete", Object: "activation_profile"},
	{Method: "GET", Path: Prefix + "/activation-types", OpID: "listActivationTypes", Permission: auth.ProfilesRead, Summary: "Activation types and the platforms each applies to", Tag: "activation", Handle: (*API).listTypes, Status: http.StatusOK, Resp: "ActivationTypes"},

	{Method: "GET", Path: Prefix + "/devices", OpID: "listDevices", Permission: auth.DevicesRead, Summary: "List devices with their user's email", Tag: "devices", Handle: (*API).listDevices, Status: http.StatusOK, Resp: "DeviceList", Query: []string{"user", "state", "after", "limit"}},
	{Method: "GET", Path: Prefix + "/devices/{id}", OpID: "getDevice", Permission: auth.DevicesRead, Summary: "Get a device with its last inventory report", Tag: "devices", Handle: (*API).getDevice, Status: http.StatusOK, Resp: "DeviceDetail"},
	{Method: "DELETE", Path: Prefix + "/devices/{id}", OpID: "removeDevice", Permission: auth.DevicesWrite, Summary: "Remove a device: its certificate is revoked and refused at its next request", Tag: "devices", Handle: (*API).removeDevice, Status: http.StatusNoContent, Action: "device.remove", Object: "device"},
	{Method: "GET", Path: Prefix + "/devices/{id}/configuration", OpID: "getDeviceConfiguration", Permission: auth.DevicesRead, Summary: "The device's effective configuration (secrets redacted), each item pending, applied or failed", Tag: "devices", Handle: (*API).deviceConfiguration, Status: http.StatusOK, Resp: "DeviceConfiguration"},
	{Method: "GET", Path: Prefix + "/devices/{id}/compliance", OpID: "getDeviceCompliance", Permission: auth.ComplianceRead, Summary: "The device's compliance state: status, violations, ladder step, untrusted, quarantined", Tag: "devices", Handle: (*API).deviceCompliance, Status: http.StatusOK, Resp: "ComplianceState"},
	{Method: "GET", Path: Prefix + "/devices/{id}/commands", OpID: "listDeviceCommands", Permission: auth.CommandsRead, Summary: "The device's commands: ?status=open is its queue, ?status=final its history", Tag: "commands", Handle: (*API).listDeviceCommands, Status: http.StatusOK, Resp: "CommandList", Query: []string{"status", "after", "limit"}},
	{Method: "POST", Path: Prefix + "/devices/{id}/commands", OpID: "sendDeviceCommand", Permission: auth.CommandsSend, Summary: "Queue a command for the device (204 for a sync_config already pending)", Tag: "commands", Handle: (*API).sendCommand, Body: "CommandCreate", BodyLimit: MaxCommandBody, Status: http.StatusCreated, Resp: "Command", Action: "command.send", Object: "command"},

	{Method: "POST", Path: Prefix + "/commands", OpID: "sendCommands", Permission: auth.CommandsSend, Summary: "Queue one command for many devices in one transaction: all or none (a device unknown or outside your scope refuses the whole call)", Tag: "commands", Handle: (*API).sendBulk, Body: "CommandBulk", BodyLimit: MaxBulkBody, Status: http.StatusCreated, Resp: "CommandsQueued", Action: "command.send_bulk", Object: "command"},
	{Method: "GET", Path: Prefix + "/commands/{id}", OpID: "getCommand", Permission: auth.CommandsRead, Summary: "Get a command with its result", Tag: "commands", Handle: (*API).getCommand, Status: http.StatusOK, Resp: "Command"},
	{Method: "POST", Path: Prefix + "/commands/{id}/cancel", OpID: "cancelCommand", Permission: auth.CommandsCancel, Summary: "Cancel an open command (409 command_final once it completed)", Tag: "commands", Handle: (*API).cancelCommand, Status: http.StatusOK, Resp: "Command", Action: "command.cancel", Object: "command"},

	{Method: "GET", Path: Prefix + "/policies", OpID: "listPolicies", Permission: auth.PoliciesRead, Summary: "List IT policies and profiles (secrets redacted)", Tag: "policies", Handle: (*API).listPolicies, Status: http.StatusOK, Resp: "PolicyList", Query: []string{"kind", "after", "limit"}},
	{Method: "POST", Path: Prefix + "/policies", OpID: "createPolicy", Permission: auth.PoliciesWrite, Summary: "Create a policy; invalid settings are 400 invalid_policy with one field per problem", Tag: "policies", Handle: (*API).createPolicy, Body: "PolicyCreate", BodyLimit: MaxPolicyBody, Status: http.StatusCreated, Resp: "Policy", Action: "policy.create", Object: "policy"},
	{Method: "GET", Path: Prefix + "/policies/{id}", OpID: "getPolicy", Permission: auth.PoliciesRead, Summary: "Get a policy (secrets redacted)", Tag: "policies", Handle: (*API).getPolicy, Status: http.StatusOK, Resp: "Policy"},
	{Method: "PATCH", Path: Prefix + "/policies/{id}", OpID: "updatePolicy", Permission: auth.PoliciesWrite, Summary: "Change a policy; a redacted secret sent back unchanged keeps the stored one", Tag: "policies", Handle: (*API).updatePolicy, Body: "PolicyPatch", BodyLimit: MaxPolicyBody, Status: http.StatusOK, Resp: "Policy", Action: "policy.update", Object: "policy"},
	{Method: "DELETE", Path: Prefix + "/policies/{id}", OpID: "deletePolicy", Permission: auth.PoliciesWrite, Summary: "Delete a policy and its assignments", Tag: "policies", Handle: (*API).deletePolicy, Status: http.StatusNoContent, Action: "policy.delete", Object: "policy"},
	{Method: "GET", Path: Prefix + "/policies/{id}/assignments", OpID: "listPolicyAssignments", Permission: auth.PoliciesRead, Summary: "Who a policy is assigned to: users, then groups", Tag: "policies", Handle: (*API).listAssignments, Status: http.StatusOK, Resp: "AssignmentList"},
	{Method: "POST", Path: Prefix + "/policies/{id}/assignments", OpID: "assignPolicy", Permission: auth.PoliciesWrite, Summary: "Assign a policy to a user or a group (assigning twice is not an error)", Tag: "policies", Handle: (*API).assignPolicy, Body: "AssignmentCreate", BodyLimit: MaxAssignmentBody, Status: http.StatusNoContent, Action: "policy.assign", Object: "policy"},
	{Method: "DELETE", Path: Prefix + "/policies/{id}/assignments/{targetKind}/{targetID}", OpID: "unassignPolicy", Permission: auth.PoliciesWrite, Summary: "Remove an assignment (targetKind user or group)", Tag: "policies", Handle: (*API).unassignPolicy, Status: http.StatusNoContent, Action: "policy.unassign", Object: "policy"},

	{Method: "GET", Path: Prefix + "/admins", OpID: "listAdmins", Permission: auth.AdminsRead, Summary: "List administrators with their scopes", Tag: "admins", Handle: (*API).listAdmins, Status: http.StatusOK, Resp: "AdminList"},
	{Method: "POST", Path: Prefix + "/admins", OpID: "createAdmin", Permission: auth.AdminsWrite, Summary: "Create an administrator, optionally limited to the devices of some groups' users, with a first API token (shown once, here); only for administrators without a scope", Tag: "admins", Handle: (*API).createAdmin, Body: "AdminCreate", BodyLimit: MaxAdminBody, Status: http.StatusCreated, Resp: "AdminCreated", Action: "admin.create", Object: "admin"},

	{Method: "GET", Path: Prefix + "/roles", OpID: "listRoles", Permission: auth.RolesRead, Summary: "List roles: the built-in ones, then the custom ones by name", Tag: "roles", Handle: (*API).listRoles, Status: http.StatusOK, Resp: "RoleList"},
	{Method: "POST", Path: Prefix + "/roles", OpID: "createRole", Permission: auth.RolesWrite, Summary: "Create a custom role: a named set of permissions (unknown names are 400 unknown_permission; none you lack yourself)", Tag: "roles", Handle: (*API).createRole, Body: "RoleCreate", BodyLimit: MaxRoleBody, Status: http.StatusCreated, Resp: "Role", Action: "role.create", Object: "role"},
	{Method: "GET", Path: Prefix + "/roles/{id}", OpID: "getRole", Permission: auth.RolesRead, Summary: "Get a role", Tag: "roles", Handle: (*API).getRole, Status: http.StatusOK, Resp: "Role"},
	{Method: "PATCH", Path: Prefix + "/roles/{id}", OpID: "updateRole", Permission: auth.RolesWrite, Summary: "Change a custom role (permissions, when present, replaces the list); a built-in role is 409 role_built_in", Tag: "roles", Handle: (*API).updateRole, Body: "RolePatch", BodyLimit: MaxRoleBody, Status: http.StatusOK, Resp: "Role", Action: "role.update", Object: "role"},
	{Method: "DELETE", Path: Prefix + "/roles/{id}", OpID: "deleteRole", Permission: auth.RolesWrite, Summary: "Delete a custom role: 409 role_built_in for a built-in one, 409 role_in_use while an administrator has it or a binding names it", Tag: "roles", Handle: (*API).deleteRole, Status: http.StatusNoContent, Action: "role.delete", Object: "role"},
	{Method: "GET", Path: Prefix + "/roles/{id}/bindings", OpID: "listRoleBindings", Permission: auth.RolesRead, Summary: "The directory groups the role is bound to", Tag: "roles", Handle: (*API).listBindings, Status: http.StatusOK, Resp: "RoleBindingList"},
	{Method: "POST", Path: Prefix + "/roles/{id}/bindings", OpID: "addRoleBinding", Permission: auth.RolesWrite, Summary: "Bind the role to a directory group (its external ID), optionally limited to some groups' devices; only for administrators without a scope", Tag: "roles", Handle: (*API).addBinding, Body: "RoleBindingCreate", BodyLimit: MaxBindingBody, Status: http.StatusCreated, Resp: "RoleBinding", Action: "role.binding.add", Object: "role"},
	{Method: "DELETE", Path: Prefix + "/roles/{id}/bindings/{bindingID}", OpID: "removeRoleBinding", Permission: auth.RolesWrite, Summary: "Remove a binding of the role", Tag: "roles", Handle: (*API).removeBinding, Status: http.StatusNoContent, Action: "role.binding.remove", Object: "role"},
	{Method: "GET", Path: Prefix + "/permissions", OpID: "listPermissions", Permission: auth.RolesRead, Summary: "The permission names roles are made of, with what each allows", Tag: "roles", Handle: (*API).listPermissions, Status: http.StatusOK, Resp: "PermissionList"},

	{Method: "GET", Path: Prefix + "/tokens", OpID: "listTokens", Permission: auth.TokensRead, Summary: "List API tokens, revoked ones too (never their values)", Tag: "tokens", Handle: (*API).listTokens, Status: http.StatusOK, Resp: "TokenList"},
	{Method: "POST", Path: Prefix + "/tokens", OpID: "createToken", Permission: auth.TokensWrite, Summary: "Create an API token for the calling administrator (its value is shown once, here)", Tag: "tokens", Handle: (*API).createToken, Body: "TokenCreate", BodyLimit: MaxTokenBody, Status: http.StatusCreated, Resp: "TokenCreated", Action: "token.create", Object: "token"},
	{Method: "DELETE", Path: Prefix + "/tokens/{id}", OpID: "revokeToken", Permission: auth.TokensWrite, Summary: "Revoke an API token", Tag: "tokens", Handle: (*API).revokeToken, Status: http.StatusNoContent, Action: "token.revoke", Object: "token"},

	{Method: "POST", Path: Prefix + "/directory/sync", OpID: "syncDirectory", Permission: auth.SettingsWrite, Summary: "Synchronise users and groups from the company directory now (409 directory_not_configured without one); answers the sync's report", Tag: "directory", Handle: (*API).syncDirectory, Status: http.StatusOK, Resp: "DirectoryReport", Action: "directory.sync", Object: "directory"},
	{Method: "GET", Path: Prefix + "/directory/status", OpID: "directoryStatus", Permission: auth.SettingsRead, Summary: "The report of the last successful directory sync", Tag: "directory", Handle: (*API).directoryStatus, Status: http.StatusOK, Resp: "DirectoryReport"},
	{Method: "GET", Path: Prefix + "/audit", OpID: "listAudit", Permission: auth.AuditRead, Summary: "The audit trail, newest first", Tag: "audit", Handle: (*API).listAudit, Status: http.StatusOK, Resp: "AuditList", Query: []string{"actor", "action", "object", "since", "before", "limit"}},
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
