// Package directory connects Custos to the company directory (OpenLDAP,
// Active Directory, or any LDAPv3 server, RFC 4511): it authenticates
// users against it and synchronises its accounts and groups into package
// user, so that an administrator adds users "using the account
// information retrieved from your company directory".
//
// Every operation opens its own connection, binds as the service account
// and closes it: binds change the connection's identity (RFC 4513 §5), so
// a shared connection would need rebinding anyway, and directory traffic
// (a login, a periodic sync) is far too light to need a pool.
package directory

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/custos-uem/custos/errs"
)

// Presets name the attribute schemes of the common directories.
const (
	// PresetOpenLDAP: inetOrgPerson accounts (RFC 2798), uid logins,
	// entryUUID (RFC 4530) as the stable ID, groupOfNames groups.
	PresetOpenLDAP = "openldap"
	// PresetAD: Active Directory user objects, sAMAccountName logins,
	// objectGUID as the stable ID, group objects with member.
	PresetAD = "ad"
)

// Defaults and limits.
const (
	DefaultPageSize    = 500
	DefaultDialTimeout = 5 * time.Second
	// DefaultTimeout bounds each LDAP request, and is sent as the
	// search's timeLimit (RFC 4511 §4.5.1.5) so the server gives up too.
	DefaultTimeout = 30 * time.Second
	// MaxPageSize: Active Directory's default MaxPageSize is 1000; larger
	// pages only cost memory.
	MaxPageSize = 5000
	// MaxLogin bounds a login before it reaches a filter.
	MaxLogin = 256

	DefaultGroupFilter = `(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))`
)

// Config describes the directory. Zero fields take the Preset's defaults.
type Config struct {
	// Preset is PresetOpenLDAP (the default) or PresetAD.
	Preset string
	// URL is ldap://host[:port] or ldaps://host[:port] (TLS from the
	// first byte, port 636).
	URL string
	// StartTLS upgrades an ldap:// connection before the service account
	// binds (RFC 4511 §4.14), so that no password crosses in clear.
	StartTLS bool
	// RootCAs verifies the directory's certificate; nil uses the system's.
	RootCAs *x509.CertPool
	// BindDN and BindPassword are the service account that searches.
	BindDN       string
	BindPassword string
	// BaseDN is where users are searched (whole subtree).
	BaseDN string
	// UserFilter selects user entries (RFC 4515).
	UserFilter string
	// Attribute mapping.
	LoginAttr       string // uid / sAMAccountName
	EmailAttr       string // mail
	DisplayNameAttr string // cn / displayName
	IDAttr          string // entryUUID / objectGUID
	// GroupBaseDN is where groups are searched; defaults to BaseDN.
	GroupBaseDN     string
	GroupFilter     string
	GroupNameAttr   string // cn
	GroupMemberAttr string // member / uniqueMember
	// PageSize is the RFC 2696 page size of sync searches.
	PageSize int
	// DialTimeout bounds the TCP (and ldaps TLS) connect; Timeout bounds
	// each request.
	DialTimeout time.Duration
	Timeout     time.Duration
}

// ErrConfig is the kind and code of every configuration error; Fields say
// which settings are wrong.
var ErrConfig = errs.E(errs.Invalid, "directory_config_invalid", "the company directory settings are invalid")

func presetDefaults(preset string) (Config, bool) {
	switch preset {
	case "", PresetOpenLDAP:
		return Config{Preset: PresetOpenLDAP, UserFilter: "(objectClass=inetOrgPerson)", LoginAttr: "uid", EmailAttr: "mail",
			DisplayNameAttr: "cn", IDAttr: "entryUUID", GroupNameAttr: "cn", GroupMemberAttr: "member"}, true
	case PresetAD:
		return Config{Preset: PresetAD, UserFilter: "(&(objectCategory=person)(objectClass=user))", LoginAttr: "sAMAccountName",
			EmailAttr: "mail", DisplayNameAttr: "displayName", IDAttr: "objectGUID", GroupNameAttr: "cn", GroupMemberAttr: "member"}, true
	}
	return Config{}, false
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validAttr reports whether s is an attribute description we may put in a
// filter unescaped: a descriptor or a numeric OID (RFC 4512 §1.4).
func validAttr(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// withDefaults returns c with the preset's defaults filled in, or an
// ErrConfig naming every wrong field.
func (c Config) withDefaults() (Config, error) {
	f := map[string]string{}
	d, ok := presetDefaults(c.Preset)
	if !ok {
		f["preset"] = `"openldap" or "ad"`
	}
	c.Preset = orDefault(c.Preset, d.Preset)
	c.UserFilter = orDefault(strings.TrimSpace(c.UserFilter), d.UserFilter)
	c.LoginAttr = orDefault(c.LoginAttr, d.LoginAttr)
	c.EmailAttr = orDefault(c.EmailAttr, d.EmailAttr)
	c.DisplayNameAttr = orDefault(c.DisplayNameAttr, d.DisplayNameAttr)
	c.IDAttr = orDefault(c.IDAttr, d.IDAttr)
	c.GroupBaseDN = orDefault(c.GroupBaseDN, c.BaseDN)
	c.GroupFilter = orDefault(strings.TrimSpace(c.GroupFilter), DefaultGroupFilter)
	c.GroupNameAttr = orDefault(c.GroupNameAttr, d.GroupNameAttr)
	c.GroupMemberAttr = orDefault(c.GroupMemberAttr, d.GroupMemberAttr)
	c.PageSize = orDefault(c.PageSize, DefaultPageSize)
	c.DialTimeout = orDefault(c.DialTimeout, DefaultDialTimeout)
	c.Timeout = orDefault(c.Timeout, DefaultTimeout)

	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		f["url"] = "required: ldap://host[:port] or ldaps://host[:port]"
	case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
		f["url"] = "ldap://host[:port] or ldaps://host[:port]"
	case u.User != nil:
		f["url"] = "no credentials in the URL: use bind_dn and bind_password"
	case u.Scheme == "ldaps" && c.StartTLS:
		f["start_tls"] = "ldaps:// is TLS already; StartTLS is for ldap://"
	}
	if c.BindDN == "" {
		f["bind_dn"] = "required: the service account that searches the directory"
	} else if _, err := ldap.ParseDN(c.BindDN); err != nil {
		f["bind_dn"] = "not a DN (RFC 4514): " + err.Error()
	}
	if c.BindPassword == "" {
		// An empty password makes the bind unauthenticated (RFC 4513
		// §5.1.2): it "succeeds" and then sees only what anonymous may.
		f["bind_password"] = "required: an empty password binds anonymously"
	}
	for name, dn := range map[string]string{"base_dn": c.BaseDN, "group_base_dn": c.GroupBaseDN} {
		if dn == "" {
			f[name] = "required"
		} else if _, err := ldap.ParseDN(dn); err != nil {
			f[name] = "not a DN (RFC 4514): " + err.Error()
		}
	}
	for name, filter := range map[string]string{"user_filter": c.UserFilter, "group_filter": c.GroupFilter} {
		if _, err := ldap.CompileFilter(filter); err != nil || !strings.HasPrefix(filter, "(") {
			f[name] = "not an LDAP filter (RFC 4515), e.g. (objectClass=inetOrgPerson)"
		}
	}
	for name, a := range map[string]string{"login_attr": c.LoginAttr, "email_attr": c.EmailAttr,
		"display_name_attr": c.DisplayNameAttr, "id_attr": c.IDAttr, "group_name_attr": c.GroupNameAttr,
		"group_member_attr": c.GroupMemberAttr} {
		if !validAttr(a) {
			f[name] = "an attribute name (letters, digits, -) or OID"
		}
	}
	if c.PageSize < 1 || c.PageSize > MaxPageSize {
		f["page_size"] = fmt.Sprintf("1 to %d", MaxPageSize)
	}
	if c.DialTimeout < 0 {
		f["dial_timeout"] = "positive"
	}
	if c.Timeout < 0 {
		f["timeout"] = "positive"
	}
	if len(f) > 0 {
		e := errs.E(ErrConfig.Kind, ErrConfig.Code, ErrConfig.Message)
		e.Fields = f
		return c, e
	}
	return c, nil
}
