package api

import (
	"encoding/base64"
	"net/http"

	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/pushcert"
)

// Body limits of the Apple settings.
const (
	// MaxPushCertBody holds a PEM certificate and key or a base64 PKCS#12
	// file, each at most pushcert.MaxUpload, with JSON around them.
	MaxPushCertBody = 3*pushcert.MaxUpload + 4<<10
	// MaxDEPTokenBody holds a .p7m of at most dep.MaxTokenFile, escaped.
	MaxDEPTokenBody = 2*dep.MaxTokenFile + 1<<10
	MaxDEPBody      = 32 << 10
)

// appleRoutes are the routes of the MDM push certificate and automated
// enrollment (the route table appends them).
var appleRoutes = []route{
	{Method: "GET", Path: Prefix + "/apple/push-certificate", OpID: "getApplePushCertificate", Permission: auth.SettingsRead, Summary: "The MDM push certificate: topic, subject, expiry (never the key); 404 push_certificate_not_found before the first upload", Tag: "apple", Handle: (*API).getPushCert, Status: http.StatusOK, Resp: "ApplePushCertificate"},
	{Method: "PUT", Path: Prefix + "/apple/push-certificate", OpID: "uploadApplePushCertificate", Permission: auth.SettingsWrite, Summary: "Upload the MDM push certificate (PEM certificate and key, or a base64 PKCS#12 and its password). A renewal keeps the topic; another topic is 409 push_topic_change unless replace_topic confirms it (every enrolled device then stops answering pushes)", Tag: "apple", Handle: (*API).uploadPushCert, Body: "ApplePushCertificateUpload", BodyLimit: MaxPushCertBody, Status: http.StatusOK, Resp: "ApplePushCertificate", Action: "apple.push_certificate.upload", Object: "apple_push_certificate"},

	{Method: "GET", Path: Prefix + "/apple/dep", OpID: "getAppleDEP", Permission: auth.SettingsRead, Summary: "Automated enrollment: the server token (never its secrets), the last sync, the profile settings, the default user", Tag: "apple", Handle: (*API).getDEP, Status: http.StatusOK, Resp: "AppleDEP"},
	{Method: "PATCH", Path: Prefix + "/apple/dep", OpID: "updateAppleDEP", Permission: auth.SettingsWrite, Summary: "Change the ADE profile settings (the next sync defines the profile again and assigns it) or the default user (\"\" clears it)", Tag: "apple", Handle: (*API).updateDEP, Body: "AppleDEPPatch", BodyLimit: MaxDEPBody, Status: http.StatusOK, Resp: "AppleDEP", Action: "apple.dep.update", Object: "apple_dep"},
	{Method: "GET", Path: Prefix + "/apple/dep/public-key", OpID: "getAppleDEPPublicKey", Permission: auth.SettingsRead, Summary: "The certificate (PEM) to upload to Apple Business Manager for this MDM server; Apple encrypts the server token to it", Tag: "apple", Handle: (*API).depPublicKey, Status: http.StatusOK, Resp: "AppleDEPPublicKey"},
	{Method: "PUT", Path: Prefix + "/apple/dep/token", OpID: "uploadAppleDEPToken", Permission: auth.SettingsWrite, Summary: "Upload the server token (.p7m) Apple Business Manager gave for the public key; stored sealed, never shown", Tag: "apple", Handle: (*API).uploadDEPToken, Body: "AppleDEPTokenUpload", BodyLimit: MaxDEPTokenBody, Status: http.StatusOK, Resp: "AppleDEPToken", Action: "apple.dep.token.upload", Object: "apple_dep"},
	{Method: "POST", Path: Prefix + "/apple/dep/sync", OpID: "syncAppleDEP", Permission: auth.SettingsWrite, Summary: "Sync the ADE device list now and assign the profile; 409 ade_not_configured or ade_token_expired without a usable token", Tag: "apple", Handle: (*API).syncDEP, Status: http.StatusOK, Resp: "AppleDEPSync", Action: "apple.dep.sync", Object: "apple_dep"},
	{Method: "GET", Path: Prefix + "/apple/dep/devices", OpID: "listAppleDEPDevices", Permission: auth.SettingsRead, Summary: "The devices Apple Business Manager assigned to this server, by serial number", Tag: "apple", Handle: (*API).listDEPDevices, Status: http.StatusOK, Resp: "AppleDEPDeviceList", Query: []string{"after", "limit"}},
	{Method: "PATCH", Path: Prefix + "/apple/dep/devices/{id}", OpID: "assignAppleDEPDevice", Permission: auth.SettingsWrite, Summary: "Assign an ADE device (by serial number) to the user it enrolls for (\"\" clears it)", Tag: "apple", Handle: (*API).assignDEPDevice, Body: "AppleDEPDevicePatch", BodyLimit: MaxDEPBody, Status: http.StatusOK, Resp: "AppleDEPDevice", Action: "apple.dep.device.assign", Object: "apple_dep_device"},
}

func init() { routes = append(routes, appleRoutes...) }

// errNoApple answers the Apple routes of an API built without the Apple
// services (as ErrNoDirectory does for the directory).
var errNoApple = errs.E(errs.Conflict, "apple_not_configured", "Apple settings are not available on this server")

func (a *API) getPushCert(c *call) error {
	if a.d.ApplePush == nil {
		return errNoApple
	}
	info, err := a.d.ApplePush.Info(c.ctx())
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, info)
}

type pushCertUpload struct {
	Certificate  string `json:"certificate"`
	PrivateKey   string `json:"private_key"`
	PKCS12       string `json:"pkcs12"` // base64
	Password     string `json:"password"`
	ReplaceTopic bool   `json:"replace_topic"`
}

func (a *API) uploadPushCert(c *call) error {
	if a.d.ApplePush == nil {
		return errNoApple
	}
	var in pushCertUpload
	if err := c.decode(&in); err != nil {
		return err
	}
	up := pushcert.Upload{CertPEM: []byte(in.Certificate), KeyPEM: []byte(in.PrivateKey), Password: in.Password,
		ReplaceTopic: in.ReplaceTopic, By: c.admin.Username}
	if in.PKCS12 != "" {
		b, err := base64.StdEncoding.DecodeString(in.PKCS12)
		if err != nil {
			return pushcert.ErrBadP12
		}
		up.P12 = b
	}
	info, replaced, err := a.d.ApplePush.Upload(c.ctx(), up)
	if err != nil {
		return err
	}
	c.note("topic", info.Topic)
	c.note("serial", info.Serial)
	c.note("not_after", info.NotAfter)
	if replaced != "" {
		c.note("replaced_topic", replaced)
	}
	return c.reply(http.StatusOK, info)
}

// depStatus is GET /apple/dep.
type depStatus struct {
	Token       *dep.TokenInfo    `json:"token"`
	LastSync    *dep.Report       `json:"last_sync"`
	Profile     dep.ProfileConfig `json:"profile"`
	DefaultUser string            `json:"default_user_id"`
	EnrollURL   string            `json:"enroll_url"`
}

func (a *API) depStatus(c *call) (*depStatus, error) {
	ctx := c.ctx()
	d := a.d.AppleDEP
	tok, err := d.TokenInfo(ctx)
	if err != nil {
		return nil, err
	}
	last, err := d.LastSync(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := d.ProfileConfig(ctx)
	if err != nil {
		return nil, err
	}
	def, err := d.DefaultUser(ctx)
	if err != nil {
		return nil, err
	}
	return &depStatus{Token: tok, LastSync: last, Profile: cfg, DefaultUser: def, EnrollURL: d.EnrollURL()}, nil
}

func (a *API) getDEP(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	st, err := a.depStatus(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, st)
}

type depPatch struct {
	Profile     *dep.ProfileConfig `json:"profile"`
	DefaultUser *string            `json:"default_user_id"`
}

func (a *API) updateDEP(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	var in depPatch
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.Profile != nil {
		if err := a.d.AppleDEP.SetProfileConfig(c.ctx(), *in.Profile); err != nil {
			return err
		}
		c.note("profile", true)
	}
	if in.DefaultUser != nil {
		if err := a.d.AppleDEP.SetDefaultUser(c.ctx(), *in.DefaultUser); err != nil {
			return err
		}
		c.note("default_user_id", *in.DefaultUser)
	}
	st, err := a.depStatus(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, st)
}

func (a *API) depPublicKey(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	pemBytes, err := a.d.AppleDEP.PublicKeyPEM(c.ctx())
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"certificate": string(pemBytes)})
}

func (a *API) uploadDEPToken(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	var in struct {
		Token string `json:"token"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	info, err := a.d.AppleDEP.UploadToken(c.ctx(), []byte(in.Token), c.admin.Username)
	if err != nil {
		return err
	}
	c.note("consumer_key", info.ConsumerKey)
	c.note("expiry", info.Expiry)
	return c.reply(http.StatusOK, info)
}

func (a *API) syncDEP(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	rep, err := a.d.AppleDEP.Sync(c.ctx())
	if err != nil {
		return err
	}
	c.note("fetched", rep.Fetched)
	c.note("assigned", rep.Assigned)
	return c.reply(http.StatusOK, rep)
}

func (a *API) listDEPDevices(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	limit, err := c.limit()
	if err != nil {
		return err
	}
	after := c.r.URL.Query().Get("after")
	devs, err := a.d.AppleDEP.Devices(c.ctx(), after, limit+1)
	if err != nil {
		return err
	}
	next := ""
	if len(devs) > limit {
		devs = devs[:limit]
		next = devs[len(devs)-1].Serial
	}
	return c.reply(http.StatusOK, newList(devs, next))
}

func (a *API) assignDEPDevice(c *call) error {
	if a.d.AppleDEP == nil {
		return errNoApple
	}
	serial, err := c.id("id", errs.E(errs.NotFound, "ade_device_not_found", "no ADE device with this serial number"))
	if err != nil {
		return err
	}
	var in struct {
		UserID *string `json:"user_id"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.UserID == nil {
		e := errs.E(errs.Invalid, "invalid_request", "user_id is required")
		e.Fields = map[string]string{"user_id": "required (\"\" clears the assignment)"}
		return e
	}
	if err := a.d.AppleDEP.AssignUser(c.ctx(), serial, *in.UserID); err != nil {
		return err
	}
	c.note("user_id", *in.UserID)
	d, err := a.d.AppleDEP.Device(c.ctx(), serial)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, d)
}

// appleSchemas are the OpenAPI components of the Apple routes.
func appleSchemas() obj {
	s := obj{"type": "string"}
	b := obj{"type": "boolean"}
	i := obj{"type": "integer"}
	pushCert := object(nil, obj{
		"topic": str1("com.apple.mgmt.External.<uuid>"), "subject": s, "serial": s, "not_before": dateTime, "not_after": dateTime,
		"uploaded_at": dateTime, "uploaded_by": s, "days_left": i, "expiring_soon": b, "expired": b, "private_key": str1("always ***"),
	})
	profile := object(nil, obj{
		"profile_name": s, "is_supervised": b, "is_mandatory": b, "is_mdm_removable": b, "await_device_configured": b,
		"skip_setup_items": obj{"type": "array", "items": s}, "department": s, "support_phone_number": s, "support_email_address": s,
		"language": s, "region": s,
	})
	token := object(nil, obj{"configured": b, "consumer_key": s, "expiry": dateTime, "uploaded_at": dateTime, "uploaded_by": s,
		"days_left": i, "expiring_soon": b, "expired": b})
	report := object(nil, obj{"at": dateTime, "full": b, "fetched": i, "added": i, "modified": i, "deleted": i,
		"profile_uuid": s, "assigned": i, "assign_failed": i, "server_name": s, "org_name": s})
	device := object(nil, obj{"serial": s, "model": s, "description": s, "color": s, "device_family": s, "os": s, "op_type": s,
		"op_date": dateTimeOpt, "removed": b, "apple_profile_uuid": s, "apple_profile_status": s, "profile_uuid": s, "assign_status": s,
		"assigned_at": dateTimeOpt, "user_id": s, "enrolled_device_id": s, "enrolled_at": dateTimeOpt, "synced_at": dateTime})
	return obj{
		"ApplePushCertificate": pushCert,
		"ApplePushCertificateUpload": object(nil, obj{
			"certificate": str1("PEM certificate (may also hold the key)"), "private_key": str1("PEM private key"),
			"pkcs12": str1("base64 PKCS#12 file, instead of certificate and private_key"), "password": str1("PKCS#12 password"),
			"replace_topic": obj{"type": "boolean", "description": "confirm replacing a certificate of another topic"},
		}),
		"AppleDEPProfile": profile,
		"AppleDEPToken":   token,
		"AppleDEPSync":    report,
		"AppleDEP": object(nil, obj{"token": ref("AppleDEPToken"), "last_sync": obj{"oneOf": []any{ref("AppleDEPSync"), obj{"type": "null"}}},
			"profile": ref("AppleDEPProfile"), "default_user_id": s, "enroll_url": s}),
		"AppleDEPPatch":       object(nil, obj{"profile": ref("AppleDEPProfile"), "default_user_id": str1("\"\" clears it")}),
		"AppleDEPPublicKey":   object([]string{"certificate"}, obj{"certificate": str1("PEM certificate")}),
		"AppleDEPTokenUpload": object([]string{"token"}, obj{"token": str1("the .p7m file's content")}),
		"AppleDEPDevice":      device,
		"AppleDEPDeviceList":  listOf("AppleDEPDevice"),
		"AppleDEPDevicePatch": object([]string{"user_id"}, obj{"user_id": str1("the user's ID; \"\" clears it")}),
	}
}

// merge adds the entries of extra to base.
func merge(base, extra obj) obj {
	for k, v := range extra {
		base[k] = v
	}
	return base
}
