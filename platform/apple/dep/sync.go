package dep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	depclient "github.com/micromdm/nanodep/client"
	"github.com/micromdm/nanodep/godep"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/secret"
)

// Service is automated enrollment on the Core. Store and Box are
// required; PublicURL makes the profile's url.
type Service struct {
	Store Store
	Box   *secret.Box
	// BaseURL is Apple's ADE API; default DefaultBaseURL (tests point it
	// at deptest).
	BaseURL string
	// HTTPClient reaches Apple; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
	// PublicURL is how devices reach the Core (the profile's url is
	// PublicURL + PathEnroll).
	PublicURL string
	// Users checks a user ID before it is assigned; nil skips the check
	// (the store's foreign key still refuses unknown users).
	Users func(ctx context.Context, id string) error
	// Enroll is the enrollment of a device (see enroll.go).
	Enroll Enroller
	Now    func() time.Time
	Log    *slog.Logger

	syncMu sync.Mutex // one sync at a time in this process
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// store adapts the Service to nanodep's ClientStorage: the OAuth1 tokens
// and the base URL of the one DEP name.
type store struct{ s *Service }

func (c store) RetrieveAuthTokens(ctx context.Context, _ string) (*depclient.OAuth1Tokens, error) {
	return c.s.tokens(ctx)
}

func (c store) RetrieveConfig(context.Context, string) (*depclient.Config, error) {
	base := c.s.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return &depclient.Config{BaseURL: strings.TrimSuffix(base, "/") + "/"}, nil
}

// MaxAPIResponse bounds what the Core reads of one answer of Apple's ADE
// API: a page of PageSize devices is about 1 MiB of JSON.
const MaxAPIResponse = 16 << 20

// client builds a godep client; its session lives as long as the client
// (one sync run), so a replaced token takes effect at the next run.
func (s *Service) client() *godep.Client {
	hc := http.Client{Timeout: 60 * time.Second}
	if s.HTTPClient != nil {
		hc = *s.HTTPClient
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = limitTransport{next}
	return godep.NewClient(store{s}, godep.WithClient(&hc), godep.WithUserAgent("custos-ade/1"))
}

// limitTransport cuts every answer at MaxAPIResponse: reading past it is
// an error, so a runaway answer fails the sync instead of filling memory.
type limitTransport struct{ next http.RoundTripper }

func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxAPIResponse}
	}
	return resp, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("ADE API answer over %d bytes", MaxAPIResponse)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// ProfileConfig is the administrator-edited part of the ADE profile
// (Apple's "Define a Profile" fields).
type ProfileConfig struct {
	Name                  string   `json:"profile_name"`
	IsSupervised          bool     `json:"is_supervised"`
	IsMandatory           bool     `json:"is_mandatory"`
	IsMDMRemovable        bool     `json:"is_mdm_removable"`
	AwaitDeviceConfigured bool     `json:"await_device_configured"`
	SkipSetupItems        []string `json:"skip_setup_items"`
	Department            string   `json:"department"`
	SupportPhoneNumber    string   `json:"support_phone_number"`
	SupportEmailAddress   string   `json:"support_email_address"`
	Language              string   `json:"language"`
	Region                string   `json:"region"`
}

// Config limits.
const (
	MaxConfigField = 256
	MaxSkipItems   = 64
)

// DefaultProfileConfig is the profile until an administrator edits it:
// supervised, mandatory, not removable — what a company-owned device
// enrolled through ADE is for.
func DefaultProfileConfig() ProfileConfig {
	return ProfileConfig{Name: "Custos", IsSupervised: true, IsMandatory: true, SkipSetupItems: []string{}}
}

// Validate checks the field limits.
func (c *ProfileConfig) Validate() error {
	fields := map[string]string{}
	for k, v := range map[string]string{"profile_name": c.Name, "department": c.Department, "support_phone_number": c.SupportPhoneNumber,
		"support_email_address": c.SupportEmailAddress, "language": c.Language, "region": c.Region} {
		if len(v) > MaxConfigField {
			fields[k] = fmt.Sprintf("at most %d bytes", MaxConfigField)
		}
	}
	if strings.TrimSpace(c.Name) == "" {
		fields["profile_name"] = "required"
	}
	if len(c.SkipSetupItems) > MaxSkipItems {
		fields["skip_setup_items"] = fmt.Sprintf("at most %d items", MaxSkipItems)
	}
	for _, it := range c.SkipSetupItems {
		if it == "" || len(it) > 64 || strings.ContainsAny(it, " \t\r\n\"<>") {
			fields["skip_setup_items"] = "items are Apple's names such as Location, Restore, Siri"
		}
	}
	if len(fields) > 0 {
		e := errs.E(errs.Invalid, "invalid_ade_profile", "the ADE profile settings are invalid")
		e.Fields = fields
		return e
	}
	return nil
}

// ProfileConfig returns the stored profile config, or the default.
func (s *Service) ProfileConfig(ctx context.Context) (ProfileConfig, error) {
	raw, err := s.Store.DEPSetting(ctx, keyConfig)
	if errors.Is(err, errs.ErrNotFound) {
		return DefaultProfileConfig(), nil
	}
	if err != nil {
		return ProfileConfig{}, err
	}
	var c ProfileConfig
	err = json.Unmarshal([]byte(raw), &c)
	if c.SkipSetupItems == nil {
		c.SkipSetupItems = []string{}
	}
	return c, err
}

// SetProfileConfig stores c; the next sync defines the profile again and
// assigns it to every device.
func (s *Service) SetProfileConfig(ctx context.Context, c ProfileConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, _ := json.Marshal(c)
	return s.Store.PutDEPSetting(ctx, keyConfig, string(b), s.now())
}

// definedProfile is the profile last defined with Apple.
type definedProfile struct {
	UUID      string    `json:"uuid"`
	Hash      string    `json:"hash"` // of the ProfileJson sent
	DefinedAt time.Time `json:"defined_at"`
}

// profileJSON is the profile sent to Apple for c.
func (s *Service) profileJSON(c ProfileConfig) *godep.ProfileJson {
	url := strings.TrimSuffix(s.PublicURL, "/") + PathEnroll
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	return &godep.ProfileJson{
		ProfileName: &c.Name, Url: &url, IsSupervised: &c.IsSupervised, IsMandatory: &c.IsMandatory,
		IsMdmRemovable: c.IsMDMRemovable, AwaitDeviceConfigured: &c.AwaitDeviceConfigured,
		SkipSetupItems: c.SkipSetupItems, Department: opt(c.Department), SupportPhoneNumber: opt(c.SupportPhoneNumber),
		SupportEmailAddress: opt(c.SupportEmailAddress), Language: opt(c.Language), Region: opt(c.Region),
	}
}

// Report is the outcome of a sync run.
type Report struct {
	At          time.Time `json:"at"`
	Full        bool      `json:"full"` // a fetch of every device (no usable cursor)
	Fetched     int       `json:"fetched"`
	Added       int       `json:"added"`
	Modified    int       `json:"modified"`
	Deleted     int       `json:"deleted"`
	ProfileUUID string    `json:"profile_uuid,omitempty"`
	Assigned    int       `json:"assigned"`
	Failed      int       `json:"assign_failed"`
	// ServerName and OrgName are what Apple Business Manager calls this
	// MDM server and its organisation (GET /account).
	ServerName string `json:"server_name,omitempty"`
	OrgName    string `json:"org_name,omitempty"`
}

// cursor is the persisted sync cursor.
type cursor struct {
	Cursor string    `json:"cursor"`
	At     time.Time `json:"at"`
}

// Sync brings the device list up to date and assigns the profile: the
// scheduled job (which only one Core claims per interval) and the API's
// "sync now". It answers how many devices it saw.
func (s *Service) Sync(ctx context.Context) (*Report, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if _, err := s.tokens(ctx); err != nil {
		if errors.Is(err, ErrTokenExpired) {
			s.CheckExpiry(ctx)
		}
		return nil, err
	}
	cl := s.client()
	rep := &Report{At: s.now().UTC()}
	// The account first: it proves the token (the session opens here)
	// and names the server the way ABM shows it.
	acct, err := cl.AccountDetail(ctx, depName)
	if err != nil {
		return nil, s.apiErr(err)
	}
	if acct.ServerName != nil {
		rep.ServerName = clip(*acct.ServerName)
	}
	if acct.OrgName != nil {
		rep.OrgName = clip(*acct.OrgName)
	}
	var cur cursor
	if raw, err := s.Store.DEPSetting(ctx, keyCursor); err == nil {
		json.Unmarshal([]byte(raw), &cur)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return nil, err
	}
	var touched []string
	if cur.Cursor != "" {
		t, err := s.pages(ctx, rep, false, cur.Cursor, cl)
		if godep.IsCursorExpired(err) || godep.IsCursorInvalid(err) {
			// Apple: a cursor older than 7 days is refused; fetch anew.
			s.log().InfoContext(ctx, "ADE sync: the cursor expired; fetching every device again", "err", err)
			cur.Cursor, err = "", nil
		}
		if err != nil {
			return nil, s.apiErr(err)
		}
		touched = t
	}
	if cur.Cursor == "" {
		rep.Full = true
		t, err := s.pages(ctx, rep, true, "", cl)
		if err != nil {
			return nil, s.apiErr(err)
		}
		touched = t
	}
	if err := s.assign(ctx, cl, rep, touched); err != nil {
		return rep, s.apiErr(err)
	}
	b, _ := json.Marshal(rep)
	s.Store.PutDEPSetting(ctx, keyLastSync, string(b), s.now())
	return rep, nil
}

// pages fetches (fetch=true: /server/devices) or syncs (/devices/sync)
// from cursor until Apple says no more follow, storing each page and the
// cursor after it, so an interrupted run resumes where it stopped.
func (s *Service) pages(ctx context.Context, rep *Report, fetch bool, cur string, cl *godep.Client) ([]string, error) {
	var touched []string
	for page := 0; page < MaxPages; page++ {
		opts := []godep.DeviceRequestOption{godep.WithLimit(PageSize)}
		if cur != "" {
			opts = append(opts, godep.WithCursor(cur))
		}
		var resp *godep.FetchDeviceResponseJson
		var err error
		if fetch {
			resp, err = cl.FetchDevices(ctx, depName, opts...)
		} else {
			resp, err = cl.SyncDevices(ctx, depName, opts...)
		}
		if err != nil {
			return touched, err
		}
		now := s.now().UTC()
		devs := make([]Device, 0, len(resp.Devices))
		for _, d := range resp.Devices {
			if d.SerialNumber == "" || len(d.SerialNumber) > MaxFieldLen {
				continue
			}
			dv := fromApple(d, now)
			switch dv.OpType {
			case "added":
				rep.Added++
			case "modified":
				rep.Modified++
			case "deleted":
				rep.Deleted++
			}
			devs = append(devs, dv)
			if !dv.Removed {
				touched = append(touched, dv.Serial)
			}
		}
		rep.Fetched += len(devs)
		if err := s.Store.UpsertDEPDevices(ctx, devs); err != nil {
			return touched, err
		}
		if resp.Cursor != "" {
			cur = resp.Cursor
			b, _ := json.Marshal(cursor{Cursor: cur, At: now})
			if err := s.Store.PutDEPSetting(ctx, keyCursor, string(b), now); err != nil {
				return touched, err
			}
		}
		if !resp.MoreToFollow {
			return touched, nil
		}
	}
	return touched, errors.New("ADE sync: too many pages")
}

func fromApple(d godep.DeviceJson, now time.Time) Device {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return clip(*p)
	}
	dv := Device{Serial: d.SerialNumber, Model: clip(d.Model), Description: str(d.Description), Color: str(d.Color),
		AppleProfileUUID: str(d.ProfileUuid), OpDate: d.OpDate, SyncedAt: now}
	if d.DeviceFamily != nil {
		dv.DeviceFamily = clip(string(*d.DeviceFamily))
	}
	if d.Os != nil {
		dv.OS = clip(string(*d.Os))
	}
	if d.OpType != nil {
		dv.OpType = clip(string(*d.OpType))
	}
	if d.ProfileStatus != nil {
		dv.AppleProfileStatus = clip(string(*d.ProfileStatus))
	}
	dv.Removed = dv.OpType == string(godep.DeviceJsonOpTypeDeleted)
	return dv
}

// MaxFieldLen bounds every string the Core stores of Apple's answers and
// of a device's MachineInfo.
const MaxFieldLen = 256

func clip(s string) string {
	if len(s) > MaxFieldLen {
		return s[:MaxFieldLen]
	}
	return s
}

// assign defines the profile when its settings changed since it was last
// defined, then assigns it to the devices of this run that do not carry
// it (every device when the profile is new).
func (s *Service) assign(ctx context.Context, cl *godep.Client, rep *Report, touched []string) error {
	if s.PublicURL == "" {
		return nil
	}
	cfg, err := s.ProfileConfig(ctx)
	if err != nil {
		return err
	}
	pj := s.profileJSON(cfg)
	b, _ := json.Marshal(pj)
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	var prof definedProfile
	if raw, err := s.Store.DEPSetting(ctx, keyProfile); err == nil {
		json.Unmarshal([]byte(raw), &prof)
	} else if !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	var serials []string
	if prof.UUID == "" || prof.Hash != hash {
		resp, err := cl.DefineProfile(ctx, depName, pj)
		if err != nil {
			return fmt.Errorf("define ADE profile: %w", err)
		}
		if resp.ProfileUuid == nil || *resp.ProfileUuid == "" {
			return errors.New("define ADE profile: Apple answered no profile_uuid")
		}
		prof = definedProfile{UUID: clip(*resp.ProfileUuid), Hash: hash, DefinedAt: s.now().UTC()}
		pb, _ := json.Marshal(prof)
		if err := s.Store.PutDEPSetting(ctx, keyProfile, string(pb), s.now()); err != nil {
			return err
		}
		// A new profile goes to every device assigned to this server.
		for after := ""; ; {
			devs, err := s.Store.ListDEPDevices(ctx, after, 1000)
			if err != nil {
				return err
			}
			for _, d := range devs {
				if !d.Removed {
					serials = append(serials, d.Serial)
				}
			}
			if len(devs) < 1000 {
				break
			}
			after = devs[len(devs)-1].Serial
		}
	} else {
		for _, serial := range touched {
			d, err := s.Store.DEPDevice(ctx, serial)
			if err != nil {
				return err
			}
			if d.ProfileUUID != prof.UUID || d.AssignStatus != "SUCCESS" || d.AppleProfileUUID != prof.UUID {
				serials = append(serials, serial)
			}
		}
	}
	rep.ProfileUUID = prof.UUID
	for len(serials) > 0 {
		chunk := serials[:min(len(serials), PageSize)]
		serials = serials[len(chunk):]
		resp, err := cl.AssignProfile(ctx, depName, prof.UUID, chunk...)
		if err != nil {
			return fmt.Errorf("assign ADE profile: %w", err)
		}
		status := make(map[string]string, len(chunk))
		for _, serial := range chunk {
			st := string(resp.Devices[serial])
			if st == "" {
				st = "FAILED"
			}
			status[serial] = clip(st)
			if st == string(godep.AssignProfileResponseJsonDevicesValueSUCCESS) {
				rep.Assigned++
			} else {
				rep.Failed++
			}
		}
		if err := s.Store.RecordDEPAssignment(ctx, prof.UUID, status, s.now()); err != nil {
			return err
		}
	}
	return nil
}

// apiErr maps Apple's refusals to errors the API shows: a refused token
// is the administrator's to fix; anything else is Apple unavailable.
func (s *Service) apiErr(err error) error {
	var authErr *depclient.AuthError
	var httpErr *godep.HTTPError
	switch {
	case errors.As(err, &authErr):
		s.log().Warn("ADE: Apple refused the server token", "status", authErr.StatusCode)
		return errs.Wrap(errs.Conflict, "ade_token_refused", "Apple refused the ADE server token: download a new one in Apple Business Manager and upload it", err)
	case errors.As(err, &httpErr):
		return errs.Wrap(errs.Unavailable, "ade_api_error", fmt.Sprintf("Apple's ADE API answered %s", httpErr.Status), err)
	case errs.KindOf(err) != errs.Internal:
		return err
	}
	return errs.Wrap(errs.Unavailable, "ade_unavailable", "Apple's ADE API could not be reached", err)
}

// LastSync returns the report of the last successful sync; nil when none.
func (s *Service) LastSync(ctx context.Context) (*Report, error) {
	raw, err := s.Store.DEPSetting(ctx, keyLastSync)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Report
	return &r, json.Unmarshal([]byte(raw), &r)
}

// Devices lists the synced devices (see DeviceStore.ListDEPDevices).
func (s *Service) Devices(ctx context.Context, after string, limit int) ([]*Device, error) {
	return s.Store.ListDEPDevices(ctx, after, limit)
}

// AssignUser sets the Custos user a device enrolls for ("" clears it).
func (s *Service) AssignUser(ctx context.Context, serial, userID string) error {
	if userID != "" && s.Users != nil {
		if err := s.Users(ctx, userID); err != nil {
			return err
		}
	}
	err := s.Store.AssignDEPUser(ctx, serial, userID)
	if errors.Is(err, errs.ErrNotFound) {
		return errs.Wrap(errs.NotFound, "ade_device_not_found", "no ADE device with this serial number (or no such user)", err)
	}
	return err
}

// DefaultUser is the user ADE devices without one of their own enroll
// for ("" for none).
func (s *Service) DefaultUser(ctx context.Context) (string, error) {
	v, err := s.Store.DEPSetting(ctx, keyDefaultUser)
	if errors.Is(err, errs.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// SetDefaultUser sets (or, with "", clears) the default user.
func (s *Service) SetDefaultUser(ctx context.Context, userID string) error {
	if userID != "" && s.Users != nil {
		if err := s.Users(ctx, userID); err != nil {
			return err
		}
	}
	return s.Store.PutDEPSetting(ctx, keyDefaultUser, userID, s.now())
}

// Device returns the synced device with serial (errs.ErrNotFound, code
// ade_device_not_found, when the sync never saw it).
func (s *Service) Device(ctx context.Context, serial string) (*Device, error) {
	d, err := s.Store.DEPDevice(ctx, serial)
	if errors.Is(err, errs.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, "ade_device_not_found", "no ADE device with this serial number", err)
	}
	return d, err
}

// EnrollURL is the profile's url: where devices POST their MachineInfo.
func (s *Service) EnrollURL() string { return strings.TrimSuffix(s.PublicURL, "/") + PathEnroll }
