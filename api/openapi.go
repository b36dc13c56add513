package api

import (
	"encoding/json"

	"fmt"
	"github.com/custos-uem/custos/auth"
	"net/http"
	"regexp"
	"strings"
)

// rawJSON is a document already encoded.
type rawJSON = json.RawMessage

type obj = map[string]any

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func str1(desc string) obj { return obj{"type": "string", "description": desc} }

func strOpt(desc string) obj { return obj{"type": []string{"string", "null"}, "description": desc} }

var dateTime = obj{"type": "string", "format": "date-time"}

var dateTimeOpt = obj{"type": []string{"string", "null"}, "format": "date-time"}

func listOf(item string) obj {
	return obj{
		"type":     "object",
		"required": []string{"items", "next"},
		"properties": obj{
			"items": obj{"type": "array", "items": ref(item)},
			"next":  str1("cursor of the following page (?after=, or ?before= for the audit trail); empty on the last page"),
		},
	}
}

func object(required []string, props obj) obj {
	o := obj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// schemas are the components of the document: one per named body or
// answer the route table mentions.
func schemas() obj {
	platformTypes := obj{"type": "object", "description": "platform → activation type (see GET /activation-types)", "additionalProperties": obj{"type": "string"}}
	user := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "email": str1("lower case"), "username": str1("lower case"), "display_name": obj{"type": "string"},
		"source": str1("local"), "activation_profile_id": str1("directly assigned activation profile, if any"),
		"failed_activations": obj{"type": "integer"}, "activation_locked_until": dateTimeOpt,
		"created_at": dateTime, "updated_at": dateTime,
	}}
	group := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "name": obj{"type": "string"}, "description": obj{"type": "string"},
		"activation_profile_id": str1("assigned activation profile, if any"), "created_at": dateTime, "updated_at": dateTime,
	}}
	profile := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "name": obj{"type": "string"}, "description": obj{"type": "string"},
		"rank":        obj{"type": "integer", "description": "the lowest rank wins among a user's groups"},
		"max_devices": obj{"type": "integer"}, "types": platformTypes, "created_at": dateTime, "updated_at": dateTime,
	}}
	deviceProps := obj{
		"id": str1("UUID"), "user_id": obj{"type": "string"}, "user_email": obj{"type": "string"}, "hardware_id": obj{"type": "string"},
		"platform": obj{"type": "string"}, "os_version": obj{"type": "string"}, "model": obj{"type": "string"}, "name": obj{"type": "string"},
		"activation_type": obj{"type": "string"}, "activation_profile_id": obj{"type": "string"},
		"state":       obj{"type": "string", "enum": []string{"activating", "enrolled", "active", "removed"}},
		"cert_serial": obj{"type": "string"}, "config_version": obj{"type": "string"},
		"created_at": dateTime, "enrolled_at": dateTimeOpt, "activated_at": dateTimeOpt, "last_seen_at": dateTimeOpt, "removed_at": dateTimeOpt,
	}
	detailProps := obj{}
	for k, v := range deviceProps {
		detailProps[k] = v
	}
	detailProps["inventory"] = obj{"oneOf": []any{ref("Inventory"), obj{"type": "null"}}}
	token := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "admin_id": obj{"type": "string"}, "name": obj{"type": "string"}, "created_at": dateTime,
		"expires_at": dateTimeOpt, "last_used_at": dateTimeOpt, "revoked_at": dateTimeOpt,
	}}
	tokenCreated := obj{"type": "object", "properties": obj{}}
	for k, v := range token["properties"].(obj) {
		tokenCreated["properties"].(obj)[k] = v
	}
	tokenCreated["properties"].(obj)["token"] = str1("the token, cst_…: shown only in this answer")
	password := obj{"type": "object", "properties": obj{
		"id": obj{"type": "string"}, "user_id": obj{"type": "string"}, "created_by": str1("administrator ID"), "created_at": dateTime,
		"expires_at": dateTime, "used_at": dateTimeOpt, "device_id": obj{"type": "string"}, "revoked_at": dateTimeOpt,
	}}
	command := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "device_id": obj{"type": "string"}, "type": obj{"type": "string"}, "priority": obj{"type": "integer"},
		"payload": obj{}, "status": obj{"type": "string", "enum": []string{"pending", "sent", "not_now", "acknowledged", "error", "cancelled", "expired"}},
		"created_by": str1("administrator ID, or \"system\""), "created_at": dateTime, "expires_at": dateTime, "not_before": dateTime,
		"deliveries": obj{"type": "integer"}, "sent_at": dateTime, "completed_at": dateTime,
		"message": str1("the device's error message"), "result": obj{"description": "what the device returned"},
	}}
	commandIn := obj{
		"type":       str1("lock, clear_passcode, set_password, wipe_work, wipe_device, restart, device_info, installed_apps, install_app, remove_app, sync_config, message, raw"),
		"priority":   obj{"type": "integer", "description": "0 to 100, higher first; default by type"},
		"payload":    obj{"description": "the type's parameters, e.g. {\"text\": \"…\"} for message"},
		"expires_in": str1("a Go duration such as \"24h\"; default 168h, at most 2160h"),
	}
	commandBulk := obj{"device_ids": obj{"type": "array", "items": obj{"type": "string"}, "description": "1 to 100000 device IDs"}}
	for k, v := range commandIn {
		commandBulk[k] = v
	}
	policyKind := obj{"type": "string", "enum": []string{"it_policy", "wifi", "vpn", "email", "connectivity", "certificate", "app_config", "software_release", "compliance"}}
	platforms := obj{"type": "array", "items": obj{"type": "string"}, "description": "only devices of these platforms; empty: all"}
	settings := obj{"type": "object", "description": "the kind's settings; secrets read \"***\""}
	policyObj := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "name": obj{"type": "string"}, "description": obj{"type": "string"}, "kind": policyKind,
		"rank": obj{"type": "integer"}, "platforms": platforms, "settings": settings,
		"revision":   obj{"type": "integer", "description": "grows with every change of settings or platforms"},
		"created_at": dateTime, "updated_at": dateTime,
	}}
	admin := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "username": obj{"type": "string"}, "display_name": obj{"type": "string"}, "role": obj{"type": "string"},
		"scope_groups": obj{"type": "array", "items": obj{"type": "string"}, "description": "empty: every device"}, "created_at": dateTime,
		"external_id": str1("the directory entry of an administrator who signs in through the company directory (role from the groups bound to roles); absent for a local one"),
	}}
	permissionNames := obj{"type": "array", "items": obj{"type": "string", "enum": permissionEnum()}, "description": "permission names (GET /permissions); an unknown one is 400 unknown_permission"}
	role := obj{"type": "object", "properties": obj{
		"id":   str1("a built-in role's fixed ID (security_admin, enterprise_admin, help_desk, junior_help_desk) or a UUID"),
		"name": obj{"type": "string"}, "description": obj{"type": "string"}, "permissions": permissionNames,
		"built_in":   obj{"type": "boolean", "description": "built-in roles cannot be changed or deleted"},
		"created_at": dateTime, "updated_at": dateTime,
	}}
	binding := obj{"type": "object", "properties": obj{
		"id": str1("UUID"), "role_id": obj{"type": "string"}, "group": str1("the directory group's external ID"),
		"scope_groups": obj{"type": "array", "items": obj{"type": "string"}, "description": "empty: every device"}, "created_at": dateTime,
	}}
	adminCreated := obj{"type": "object", "properties": obj{"token": ref("TokenCreated")}}
	for k, v := range admin["properties"].(obj) {
		adminCreated["properties"].(obj)[k] = v
	}
	return obj{
		"Error": object([]string{"error"}, obj{"error": object([]string{"code", "message", "request_id"}, obj{
			"code": str1("stable, machine-readable"), "message": str1("safe to show"), "request_id": str1("ties the answer to the server log and the audit trail"),
			"fields": obj{"type": "object", "additionalProperties": obj{"type": "string"}, "description": "what is wrong with each named field"},
		})}),
		"OpenAPI":  obj{"type": "object", "description": "an OpenAPI 3.1 document"},
		"User":     user,
		"UserList": listOf("User"),
		"UserCreate": object([]string{"email"}, obj{
			"email": str1("an email address (stored in lower case)"), "username": str1("a-z 0-9 . _ -; default: the local part of email"),
			"display_name": obj{"type": "string"}, "activation_profile_id": str1("assign an activation profile"),
		}),
		"UserPatch": object(nil, obj{
			"email": obj{"type": "string"}, "username": obj{"type": "string"}, "display_name": obj{"type": "string"},
			"activation_profile_id": str1("assign an activation profile; \"\" unassigns"),
		}),
		"EffectiveProfile": object([]string{"profile", "source"}, obj{"profile": ref("Profile"), "source": obj{"type": "string", "enum": []string{"user", "group", "default"}}}),
		"PasswordCreate": object(nil, obj{
			"password":   str1("the activation password (8 to 128 characters); absent or empty generates one"),
			"expires_in": str1("a Go duration such as \"720h\"; default 720h, at most 8760h"),
			"send_email": obj{"type": "boolean", "description": "also send the activation email (instructions, password, QR code); 400 mail_not_configured without an SMTP server"},
		}),
		"PasswordCreated": object(nil, obj{
			"id": obj{"type": "string"}, "user_id": obj{"type": "string"}, "password": str1("the activation password: shown only in this answer"),
			"generated": obj{"type": "boolean"}, "created_by": obj{"type": "string"}, "created_at": dateTime, "expires_at": dateTime,
			"email": object([]string{"sent"}, obj{"sent": obj{"type": "boolean"}, "error": object([]string{"code", "message"}, obj{"code": obj{"type": "string"}, "message": obj{"type": "string"}})}),
		}),
		"Password":     password,
		"PasswordList": listOf("Password"),
		"Revoked":      object([]string{"revoked"}, obj{"revoked": obj{"type": "integer", "description": "how many were revoked"}}),
		"DirectoryReport": object(nil, obj{
			"started_at": dateTime, "finished_at": dateTime, "users_seen": integer, "groups_seen": integer,
			"created": integer, "updated": integer, "missing": integer, "returned": integer,
			"groups_created": integer, "groups_updated": integer, "groups_missing": integer,
			"members_added": integer, "members_removed": integer, "subgroups_added": integer, "subgroups_removed": integer,
			"failed": integer, "errors": obj{"type": "array", "items": object(nil, obj{"dn": obj{"type": "string"}, "code": obj{"type": "string"}, "message": obj{"type": "string"}})},
		}),
		"Group":     group,
		"GroupList": listOf("Group"),
		"GroupCreate": object([]string{"name"}, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "activation_profile_id": str1("assign an activation profile"),
		}),
		"GroupPatch": object(nil, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "activation_profile_id": str1("assign an activation profile; \"\" unassigns"),
		}),
		"MemberAdd":   object([]string{"user_id"}, obj{"user_id": obj{"type": "string"}}),
		"Profile":     profile,
		"ProfileList": listOf("Profile"),
		"ProfileCreate": object([]string{"name", "types"}, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"},
			"rank":        obj{"type": "integer", "description": "default 100"},
			"max_devices": obj{"type": "integer", "description": "1 to 100, default 10"}, "types": platformTypes,
		}),
		"ProfilePatch": object(nil, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "rank": obj{"type": "integer"},
			"max_devices": obj{"type": "integer"}, "types": platformTypes,
		}),
		"ActivationTypes": object([]string{"items", "platforms"}, obj{
			"items": obj{"type": "array", "items": object(nil, obj{
				"type": obj{"type": "string"}, "label": obj{"type": "string"}, "platforms": obj{"type": "array", "items": obj{"type": "string"}},
			})},
			"platforms": obj{"type": "array", "items": obj{"type": "string"}},
			"next":      obj{"type": "string"},
		}),
		"Device":       obj{"type": "object", "properties": deviceProps},
		"DeviceList":   listOf("Device"),
		"DeviceDetail": obj{"type": "object", "properties": detailProps},
		"Inventory": obj{"type": "object", "properties": obj{
			"device_id": obj{"type": "string"}, "info": obj{"type": "object"},
			"software":    obj{"type": "array", "items": obj{"type": "object"}},
			"reported_at": dateTime,
		}},
		"Token":        token,
		"TokenList":    listOf("Token"),
		"TokenCreate":  object([]string{"name"}, obj{"name": obj{"type": "string"}, "expires_in": strOpt("a Go duration such as \"720h\"; absent means no expiry")}),
		"TokenCreated": tokenCreated,
		"AuditEntry": obj{"type": "object", "properties": obj{
			"id": obj{"type": "integer"}, "at": dateTime, "actor": str1("administrator ID, or \"system\""), "actor_ip": obj{"type": "string"},
			"action": str1("e.g. user.create"), "object_type": obj{"type": "string"}, "object_id": obj{"type": "string"},
			"request_id": obj{"type": "string"}, "outcome": obj{"type": "string", "enum": []string{"ok", "failed", "denied"}},
			"detail": obj{"type": "object"},
		}},
		"AuditList": listOf("AuditEntry"),

		"SubgroupAdd": object([]string{"group_id"}, obj{"group_id": str1("the group to nest")}),

		"Command":       command,
		"CommandList":   listOf("Command"),
		"CommandCreate": object([]string{"type"}, commandIn),
		"CommandBulk":   object([]string{"device_ids", "type"}, commandBulk),
		"CommandsQueued": object([]string{"count", "items"}, obj{
			"count": obj{"type": "integer", "description": "commands queued"},
			"items": obj{"type": "array", "items": object(nil, obj{"id": str1("command ID"), "device_id": obj{"type": "string"}})},
		}),

		"Policy":     policyObj,
		"PolicyList": listOf("Policy"),
		"PolicyCreate": object([]string{"name", "kind", "settings"}, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "kind": policyKind,
			"rank": obj{"type": "integer", "description": "default 100; the lowest wins among a user's groups"}, "platforms": platforms, "settings": settings,
		}),
		"PolicyPatch": object(nil, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "rank": obj{"type": "integer"}, "platforms": platforms, "settings": settings,
		}),
		"Assignment": obj{"type": "object", "properties": obj{
			"policy_id": obj{"type": "string"}, "target_kind": obj{"type": "string", "enum": []string{"user", "group"}}, "target_id": obj{"type": "string"}, "created_at": dateTime,
		}},
		"AssignmentList":   listOf("Assignment"),
		"AssignmentCreate": object([]string{"target_kind", "target_id"}, obj{"target_kind": obj{"type": "string", "enum": []string{"user", "group"}}, "target_id": obj{"type": "string"}}),

		"DeviceConfiguration": obj{"type": "object", "properties": obj{
			"device_id": obj{"type": "string"}, "version": str1("the current effective version"),
			"device_version": str1("the version the device last acknowledged"), "up_to_date": obj{"type": "boolean"},
			"reported_version": str1("the version of the device's last status report"),
			"items": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
				"id": str1("policy ID"), "kind": policyKind, "name": obj{"type": "string"}, "revision": obj{"type": "integer"},
				"payload": obj{"type": "object", "description": "the settings, secrets reading \"***\""}, "via": str1("user, or group:<id>"),
				"status": obj{"type": "string", "enum": []string{"pending", "applied", "failed"}}, "error": obj{"type": "string"}, "at": dateTime,
			}}},
		}},
		"ComplianceState": obj{"type": "object", "properties": obj{
			"device_id": obj{"type": "string"}, "status": obj{"type": "string", "enum": []string{"unknown", "compliant", "noncompliant"}},
			"violations": obj{"type": "array", "items": obj{"type": "object"}}, "since": dateTime,
			"step":    obj{"type": "integer", "description": "index of the highest ladder step taken, -1 for none"},
			"prompts": obj{"type": "integer"}, "last_prompt_at": dateTime,
			"untrusted": obj{"type": "boolean"}, "quarantined": obj{"type": "boolean"}, "profile_id": obj{"type": "string"},
			"taken": obj{"type": "array", "items": obj{"type": "object"}}, "updated_at": dateTime,
		}},

		"Admin":     admin,
		"AdminList": listOf("Admin"),
		"AdminCreate": object([]string{"username"}, obj{
			"username": str1("a-z 0-9 . _ - (stored in lower case)"), "display_name": obj{"type": "string"},
			"role":         str1("a role ID (GET /roles); default security_admin. Only a role whose permissions you all have"),
			"scope_groups": obj{"type": "array", "items": obj{"type": "string"}, "description": "limit the administrator to the devices of these groups' users (subgroups included); empty or absent: every device"},
		}),
		"AdminCreated": adminCreated,

		"Role":     role,
		"RoleList": listOf("Role"),
		"RoleCreate": object([]string{"name", "permissions"}, obj{
			"name": str1("1 to 64 printable characters, unique (any case), not a built-in role's"), "description": obj{"type": "string"},
			"permissions": permissionNames,
		}),
		"RolePatch": object(nil, obj{
			"name": obj{"type": "string"}, "description": obj{"type": "string"}, "permissions": permissionNames,
		}),
		"RoleBinding":     binding,
		"RoleBindingList": listOf("RoleBinding"),
		"RoleBindingCreate": object([]string{"group"}, obj{
			"group":        str1("the directory group's external ID (an LDAP DN, an objectGUID …), compared exactly"),
			"scope_groups": obj{"type": "array", "items": obj{"type": "string"}, "description": "limit the group's administrators to the devices of these groups' users; empty or absent: every device"},
		}),
		"Permission": object([]string{"name", "description"}, obj{
			"name": obj{"type": "string", "enum": permissionEnum()}, "description": obj{"type": "string"},
		}),
		"PermissionList": listOf("Permission"),
	}
}

// permissionEnum lists every permission name.
func permissionEnum() []string {
	var out []string
	for _, p := range auth.Permissions() {
		out = append(out, string(p))
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([A-Za-z]+)\}`)

func errResp(desc string) obj {
	return obj{"description": desc, "content": obj{"application/json": obj{"schema": ref("Error")}}}
}

// buildOpenAPI renders the document for a route table.
// integer is the schema of a count.
var integer = obj{"type": "integer"}

func buildOpenAPI(table []route) []byte {
	paths := obj{}
	for i := range table {
		r := &table[i]
		item, _ := paths[r.Path].(obj)
		if item == nil {
			item = obj{}
			paths[r.Path] = item
		}
		op := obj{"operationId": r.OpID, "summary": r.Summary, "tags": []string{r.Tag}}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
			params = append(params, obj{"name": m[1], "in": "path", "required": true, "schema": obj{"type": "string"}})
		}
		for _, q := range r.Query {
			qp := queryParams[q]
			params = append(params, obj{"name": q, "in": "query", "required": false, "description": qp.Desc, "schema": obj{"type": qp.Type}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if r.Body != "" {
			op["requestBody"] = obj{
				"required":    !r.BodyOptional,
				"description": fmt.Sprintf("at most %d bytes", r.BodyLimit),
				"content":     obj{"application/json": obj{"schema": ref(r.Body)}},
			}
		}
		resp := obj{}
		ok := obj{"description": http.StatusText(r.Status)}
		if r.Resp != "" {
			ok["content"] = obj{"application/json": obj{"schema": ref(r.Resp)}}
		}
		resp[fmt.Sprint(r.Status)] = ok
		if r.Public {
			op["security"] = []any{}
		} else {
			op["x-custos-permission"] = string(r.Permission)
			op["description"] = fmt.Sprintf("Requires the permission %s (%s).", r.Permission, r.Permission.Description())
			resp["401"] = errResp("no, an unknown, a revoked or an expired token (token_required, token_invalid, token_revoked, token_expired)")
			resp["403"] = errResp("your role lacks the permission this needs (permission_denied; error.fields.permission names it), or only an administrator without a scope may do this (admin_scoped)")
			if strings.Contains(r.Path, "{") {
				resp["404"] = errResp("no such object, or one outside your scope (user_not_found, group_not_found, device_not_found, …)")
			}
		}
		if r.Body != "" {
			resp["400"] = errResp("invalid input (malformed_json, unknown_field, json_too_deep, wrong_field_type, or a field error)")
			resp["413"] = errResp("the body is over this endpoint's limit (body_too_large)")
		}
		resp["default"] = errResp("an error")
		op["responses"] = resp
		item[strings.ToLower(r.Method)] = op
	}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":       "Custos administrator API",
			"version":     "1",
			"description": "JSON under /api/v1. Authenticate with Authorization: Bearer <API token>. Lists are {items, next}; pass next as ?after= (?before= for the audit trail). Durations are Go duration strings (\"720h\"). Every change is recorded in the audit trail.",
		},
		"servers":  []any{obj{"url": "/"}},
		"security": []any{obj{"bearer": []string{}}},
		"paths":    paths,
		"components": obj{
			"securitySchemes": obj{"bearer": obj{"type": "http", "scheme": "bearer", "description": "an API token, cst_…"}},
			"schemas":         merge(schemas(), appleSchemas()),
		},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("api: openapi document: " + err.Error())
	}
	return b
}
