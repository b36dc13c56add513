package sim

import (
	"math/rand/v2"
	"strings"

	"github.com/custos-uem/custos/agent"
	"github.com/custos-uem/custos/device"
)

// Android. Models carry their marketing name, type allocation code, the
// Android versions they run and, per version, a build ID.
type androidModel struct {
	maker, model, name, tac string
	os                      []string
}

var androidModels = []androidModel{
	{"samsung", "SM-S921B", "Galaxy S24", "35085072", []string{"14"}},
	{"samsung", "SM-A546B", "Galaxy A54 5G", "35067931", []string{"13", "14"}},
	{"samsung", "SM-G991B", "Galaxy S21 5G", "35460911", []string{"13", "14"}},
	{"Google", "Pixel 8", "Pixel 8", "35773853", []string{"14"}},
	{"Google", "Pixel 8 Pro", "Pixel 8 Pro", "35773854", []string{"14"}},
	{"Google", "Pixel 7a", "Pixel 7a", "35587215", []string{"13", "14"}},
}

var androidBuilds = map[string]map[string][]string{
	"samsung": {"13": {"TP1A.220624.014"}, "14": {"UP1A.231005.007"}},
	"Google":  {"13": {"TQ3A.230901.001", "TQ3A.230805.001"}, "14": {"AP1A.240505.004", "UQ1A.240205.004", "AP1A.240405.002"}},
}

func android(r *rand.Rand) agent.Inventory {
	m := pick(r, androidModels)
	osv := pick(r, m.os)
	year := "2024"
	if osv == "13" {
		year = "2023"
	}
	attrs := map[string]string{
		"android_id":      chars(r, hexLower, 16),
		"build_id":        pick(r, androidBuilds[m.maker][osv]),
		"security_patch":  year + "-0" + string(rune('1'+r.IntN(9))) + "-01",
		"management_mode": "device_admin",
	}
	var serial string
	system := googleSystemApps
	if m.maker == "samsung" {
		serial = "R5C" + chars(r, "RTWX", 1) + chars(r, upperNum, 7)
		system = append(append([]app(nil), googleCoreApps...), samsungSystemApps...)
		attrs["knox_version"] = map[string]string{"13": "3.9", "14": "3.10"}[osv]
	} else {
		serial = digits(r, 2) + chars(r, "0123456789ABCDEF", 3) + "FD" + chars(r, upperNum, 7)
	}
	hw := attrs["android_id"]
	n := 30 + r.IntN(51) // 30–80 packages
	return agent.Inventory{
		OSVersion:  osv,
		HardwareID: hw,
		Model:      m.model,
		Name:       m.name,
		Info: device.Info{
			Manufacturer: m.maker,
			SerialNumber: serial,
			OSName:       "Android",
			Arch:         "arm64-v8a",
			IMEI:         imei(r, m.tac),
			PhoneNumber:  phone(r),
			Attributes:   attrs,
		},
		Apps: apps(r, system, androidPool, n),
	}
}

var googleCoreApps = []app{
	{"com.google.android.gms", "Google Play services", "24.1#.1# (190400-6########)"},
	{"com.android.vending", "Google Play Store", "41.#.1#-29 [0] [PR] 6########"},
	{"com.android.chrome", "Chrome", "12#.0.6367.#"},
	{"com.google.android.gm", "Gmail", "2024.0#.1#.6########.Release"},
	{"com.google.android.apps.maps", "Maps", "11.1##.0101"},
	{"com.google.android.youtube", "YouTube", "19.1#.3#"},
	{"com.google.android.googlequicksearchbox", "Google", "15.1#.3#.29.arm64"},
	{"com.google.android.apps.docs", "Drive", "2.24.1##.0.all.alldpi"},
	{"com.google.android.apps.photos", "Photos", "6.8#.0.6########"},
}

var googleSystemApps = append(append([]app(nil), googleCoreApps...), []app{
	{"com.google.android.dialer", "Phone", "12#.0.6########"},
	{"com.google.android.apps.messaging", "Messages", "messages.android_20240#0#_00_RC0#.phone_dynamic"},
	{"com.google.android.contacts", "Contacts", "4.2#.1#.6########"},
	{"com.google.android.deskclock", "Clock", "7.#.0"},
	{"com.google.android.calculator", "Calculator", "8.#"},
	{"com.google.android.calendar", "Calendar", "2024.1#.0-6########-release"},
	{"com.google.android.GoogleCamera", "Pixel Camera", "9.#.1##.6########"},
	{"com.google.android.apps.recorder", "Recorder", "4.#.2024####.6########"},
	{"com.google.android.apps.nbu.files", "Files by Google", "1.#####.6########"},
	{"com.google.android.apps.wallpaper", "Wallpaper & style", "1.0.6########"},
}...)

var samsungSystemApps = []app{
	{"com.samsung.android.dialer", "Phone", "14.#.##.##"},
	{"com.samsung.android.messaging", "Samsung Messages", "14.#.##.##"},
	{"com.samsung.android.app.contacts", "Contacts", "14.#.##.##"},
	{"com.sec.android.app.camera", "Camera", "14.#.##.##"},
	{"com.sec.android.gallery3d", "Gallery", "14.#.##.##"},
	{"com.sec.android.app.sbrowser", "Samsung Internet", "2#.0.#.##"},
	{"com.sec.android.app.myfiles", "My Files", "14.#.##.##"},
	{"com.samsung.android.app.notes", "Samsung Notes", "4.4.##.##"},
	{"com.samsung.android.calendar", "Calendar", "12.#.##.##"},
	{"com.sec.android.app.clockpackage", "Clock", "12.#.##.##"},
	{"com.sec.android.app.popupcalculator", "Calculator", "12.#.##.##"},
	{"com.samsung.android.spay", "Samsung Wallet", "5.#.##.##"},
	{"com.samsung.knox.securefolder", "Secure Folder", "1.9.##.##"},
	{"com.samsung.android.knox.attestation", "Knox Attestation Agent", "3.#.0#"},
	{"com.samsung.android.bixby.agent", "Bixby Voice", "3.3.##.##"},
}

var androidPool = []app{
	{"com.whatsapp", "WhatsApp", "2.24.#.##"},
	{"com.microsoft.teams", "Microsoft Teams", "1416/1.0.0.2024######"},
	{"com.microsoft.office.outlook", "Microsoft Outlook", "4.24##.#"},
	{"com.microsoft.office.word", "Microsoft Word", "16.0.17###.#####"},
	{"com.microsoft.office.excel", "Microsoft Excel", "16.0.17###.#####"},
	{"com.microsoft.office.powerpoint", "Microsoft PowerPoint", "16.0.17###.#####"},
	{"com.microsoft.skydrive", "OneDrive", "7.#.#"},
	{"com.microsoft.emmx", "Microsoft Edge", "12#.0.2478.##"},
	{"com.azure.authenticator", "Microsoft Authenticator", "6.24##.####"},
	{"com.slack", "Slack", "24.0#.10.0"},
	{"us.zoom.videomeetings", "Zoom Workplace", "6.0.#.2####"},
	{"com.google.android.apps.meetings", "Google Meet", "2024.0#.1#.6########.Release"},
	{"com.google.android.apps.docs.editors.docs", "Google Docs", "1.24.1##.0#.90"},
	{"com.google.android.apps.docs.editors.sheets", "Google Sheets", "1.24.1##.0#.90"},
	{"com.google.android.apps.docs.editors.slides", "Google Slides", "1.24.1##.0#.90"},
	{"com.google.android.keep", "Google Keep", "5.24.1##.0#.90"},
	{"com.google.android.apps.translate", "Google Translate", "8.#.##.6########.1-release"},
	{"com.google.android.apps.authenticator2", "Google Authenticator", "6.#"},
	{"com.google.android.apps.walletnfcrel", "Google Wallet", "24.1#.6########"},
	{"com.google.android.apps.youtube.music", "YouTube Music", "7.0#.5#"},
	{"com.google.android.apps.fitness", "Fit", "2024.0#.1#.00.arm64-v8a.release"},
	{"com.spotify.music", "Spotify", "8.9.##.###"},
	{"com.linkedin.android", "LinkedIn", "4.1.9##"},
	{"com.facebook.katana", "Facebook", "46#.0.0.##.10#"},
	{"com.instagram.android", "Instagram", "33#.0.0.##.1##"},
	{"org.telegram.messenger", "Telegram", "10.1#.#"},
	{"org.thoughtcrime.securesms", "Signal", "7.#.#"},
	{"com.twitter.android", "X", "10.4#.0-release.0"},
	{"com.netflix.mediaclient", "Netflix", "8.11#.0 build 1# 5063#"},
	{"com.amazon.mShop.android.shopping", "Amazon Shopping", "28.#.0.100"},
	{"com.ubercab", "Uber", "4.5##.10000"},
	{"com.airbnb.android", "Airbnb", "24.1#"},
	{"com.booking", "Booking.com", "4#.#"},
	{"com.duolingo", "Duolingo", "5.15#.#"},
	{"com.adobe.reader", "Adobe Acrobat Reader", "24.#.0.3####"},
	{"com.dropbox.android", "Dropbox", "3##.2.#"},
	{"com.evernote", "Evernote", "10.8#.#"},
	{"com.todoist", "Todoist", "11.#.#"},
	{"com.trello", "Trello", "2024.#.####"},
	{"com.atlassian.android.jira.core", "Jira Cloud", "2024.1#.1#"},
	{"com.atlassian.confluence.server", "Confluence Cloud", "2024.1#.1#"},
	{"com.github.android", "GitHub", "1.15#.0"},
	{"com.okta.android.auth", "Okta Verify", "9.#.#"},
	{"com.cisco.anyconnect.vpn.android.avf", "Cisco Secure Client", "5.1.#.##"},
	{"com.paloaltonetworks.globalprotect", "GlobalProtect", "6.2.#-###"},
	{"com.waze", "Waze", "4.10#.#.#"},
	{"com.shazam.android", "Shazam", "14.1#.0-2404##"},
	{"com.pinterest", "Pinterest", "12.1#.0"},
	{"com.reddit.frontpage", "Reddit", "2024.1#.0"},
	{"com.discord", "Discord", "22#.1# - Stable"},
	{"com.strava", "Strava", "36#.1#"},
	{"com.paypal.android.p2pmobile", "PayPal", "8.6#.#"},
	{"com.revolut.revolut", "Revolut", "10.#.#"},
	{"com.skype.raider", "Skype", "8.11#.0.###"},
	{"com.cisco.webex.meetings", "Webex", "44.#.0"},
	{"com.box.android", "Box", "5.2#.#"},
	{"com.salesforce.chatter", "Salesforce", "250.0#0"},
	{"com.servicenow.requestor", "Now Mobile", "1#.0.#"},
	{"com.workday.workdroidapp", "Workday", "2024.1#.0"},
	{"com.sap.concur", "SAP Concur", "9.1##.0"},
	{"com.docusign.ink", "DocuSign", "3.2#.#"},
	{"com.lastpass.lpandroid", "LastPass", "5.2#.0.####"},
	{"com.x8bit.bitwarden", "Bitwarden", "2024.#.0"},
	{"com.citrix.Receiver", "Citrix Workspace", "24.#.0.##"},
	{"com.vmware.horizon", "Horizon Client", "2312.#.##"},
}

// iOS. The UDID of an iPhone XS or later is the chip ID and the ECID.
type iosModel struct{ ident, name, chip, tac string }

var iosModels = []iosModel{
	{"iPhone14,5", "iPhone 13", "00008110", "35391711"},
	{"iPhone14,7", "iPhone 14", "00008110", "35094862"},
	{"iPhone15,2", "iPhone 14 Pro", "00008120", "35066582"},
	{"iPhone15,3", "iPhone 14 Pro Max", "00008120", "35066583"},
	{"iPhone15,4", "iPhone 15", "00008120", "35328117"},
	{"iPhone16,1", "iPhone 15 Pro", "00008130", "35328120"},
}

var iosVersions = []struct{ version, build string }{
	{"17.4.1", "21E236"}, {"17.5", "21F79"}, {"17.5.1", "21F90"}, {"17.6", "21G80"},
}

func ios(r *rand.Rand) agent.Inventory {
	m := pick(r, iosModels)
	v := pick(r, iosVersions)
	udid := m.chip + "-00" + chars(r, hexUpper, 14)
	n := 20 + r.IntN(36) // 20–55 managed and user apps
	return agent.Inventory{
		OSVersion:  v.version,
		HardwareID: udid,
		Model:      m.ident,
		Name:       "iPhone",
		Info: device.Info{
			Manufacturer: "Apple",
			SerialNumber: chars(r, "BCDFGHJKLMNPQRTVWXYZ0123456789", 10),
			OSName:       "iOS",
			Arch:         "arm64e",
			IMEI:         imei(r, m.tac),
			PhoneNumber:  phone(r),
			Attributes: map[string]string{
				"udid":          udid,
				"product_name":  m.name,
				"build_version": v.build,
				"supervised":    "false",
			},
		},
		Apps: apps(r, nil, iosPool, n),
	}
}

var iosPool = []app{
	{"com.microsoft.Office.Outlook", "Microsoft Outlook", "4.24##.0"},
	{"com.microsoft.skype.teams", "Microsoft Teams", "6.#.0"},
	{"com.microsoft.Office.Word", "Microsoft Word", "2.8#"},
	{"com.microsoft.Office.Excel", "Microsoft Excel", "2.8#"},
	{"com.microsoft.Office.Powerpoint", "Microsoft PowerPoint", "2.8#"},
	{"com.microsoft.skydrive", "OneDrive", "15.#.#"},
	{"com.microsoft.msedge", "Microsoft Edge", "12#.2478.##"},
	{"com.microsoft.azureauthenticator", "Microsoft Authenticator", "6.8.##"},
	{"com.google.chrome.ios", "Google Chrome", "12#.0.6367.##"},
	{"com.google.Gmail", "Gmail", "6.0.2404##"},
	{"com.google.Maps", "Google Maps", "6.11#.#"},
	{"com.google.Drive", "Google Drive", "4.2024.1#####"},
	{"com.google.Docs", "Google Docs", "1.2024.1#####"},
	{"com.google.photos", "Google Photos", "6.8#"},
	{"com.google.ios.youtube", "YouTube", "19.1#.#"},
	{"com.google.Authenticator", "Google Authenticator", "4.2.#"},
	{"net.whatsapp.WhatsApp", "WhatsApp", "24.#.7#"},
	{"com.tinyspeck.chatlyio", "Slack", "24.0#.10"},
	{"us.zoom.videomeetings", "Zoom Workplace", "6.0.#"},
	{"com.cisco.webex.meetings", "Webex", "44.#"},
	{"com.spotify.client", "Spotify", "8.9.##"},
	{"com.linkedin.LinkedIn", "LinkedIn", "9.29.##"},
	{"com.facebook.Facebook", "Facebook", "46#.0"},
	{"com.burbn.instagram", "Instagram", "33#.0"},
	{"ph.telegra.Telegraph", "Telegram", "10.1#"},
	{"org.whispersystems.signal", "Signal", "7.#"},
	{"com.atebits.Tweetie2", "X", "10.4#"},
	{"com.netflix.Netflix", "Netflix", "16.1#.0"},
	{"com.amazon.Amazon", "Amazon Shopping", "24.#.0"},
	{"com.ubercab.UberClient", "Uber", "3.6##.10000"},
	{"com.airbnb.app", "Airbnb", "24.1#"},
	{"com.duolingo.DuolingoMobile", "Duolingo", "7.1#.0"},
	{"com.adobe.Adobe-Reader", "Adobe Acrobat Reader", "24.0#.0#"},
	{"com.getdropbox.Dropbox", "Dropbox", "3##.2"},
	{"com.evernote.iPhone.Evernote", "Evernote", "10.8#"},
	{"com.atlassian.jira.app", "Jira Cloud", "2024.1#.1"},
	{"com.github.stormbreaker.prod", "GitHub", "1.15#"},
	{"com.okta.mobile", "Okta Verify", "9.#"},
	{"com.cisco.anyconnect", "Cisco Secure Client", "5.1.#"},
	{"com.paloaltonetworks.globalprotect.vpn", "GlobalProtect", "6.2.#"},
	{"com.waze.iphone", "Waze", "4.10#"},
	{"com.shazam.Shazam", "Shazam", "17.#"},
	{"com.hammerandchisel.discord", "Discord", "22#.0"},
	{"com.strava.stravaride", "Strava", "36#.0"},
	{"com.yourcompany.PPClient", "PayPal", "8.6#"},
	{"com.apple.Pages", "Pages", "14.#"},
	{"com.apple.Keynote", "Keynote", "14.#"},
	{"com.apple.Numbers", "Numbers", "14.#"},
	{"com.apple.TestFlight", "TestFlight", "3.5.#"},
	{"com.salesforce.chatter", "Salesforce", "250.0#"},
	{"com.workday.workdayapp", "Workday", "2024.1#"},
	{"com.docusign.DocuSignIt", "DocuSign", "5.3#"},
	{"com.8bit.bitwarden", "Bitwarden", "2024.#.0"},
	{"com.citrix.ReceiveriPad", "Citrix Workspace", "24.#.0"},
	{"com.box.BoxNet", "Box", "5.#"},
	{"com.servicenow.requestor", "Now Mobile", "1#.0"},
}

// Windows.
type pcModel struct{ maker, model string }

var windowsModels = []pcModel{
	{"Dell Inc.", "Latitude 7440"}, {"Dell Inc.", "Latitude 5540"}, {"Dell Inc.", "OptiPlex 7010"},
	{"LENOVO", "ThinkPad T14 Gen 4"}, {"LENOVO", "ThinkPad X1 Carbon Gen 11"},
	{"HP", "HP EliteBook 840 14 inch G10 Notebook PC"}, {"HP", "HP ProBook 450 15.6 inch G10 Notebook PC"},
}

func pcSerial(r *rand.Rand, maker string) string {
	switch maker {
	case "Dell Inc.":
		return chars(r, upperNum, 7) // service tag
	case "LENOVO":
		return "PF" + chars(r, upperNum, 6)
	default:
		return "5CG" + digits(r, 3) + chars(r, upperNum, 4)
	}
}

func windows(r *rand.Rand, inv *agent.Inventory) {
	m := pick(r, windowsModels)
	edition := pick(r, []string{"Windows 11 Pro", "Windows 11 Enterprise"})
	ubr := pick(r, []string{"3447", "3527", "3593", "3737"})
	inv.OSVersion = "10.0.22631"
	inv.HardwareID = chars(r, hexUpper, 64) // HWDevID: a SHA-256 in hex
	inv.Model = m.model
	inv.Name = "DESKTOP-" + chars(r, upperNum, 7)
	inv.Info = device.Info{
		Hostname:     inv.Name,
		Manufacturer: m.maker,
		SerialNumber: pcSerial(r, m.maker),
		OSName:       edition,
		Arch:         "x64",
		Attributes: map[string]string{
			"os_build":     "22631." + ubr,
			"display_ver":  "23H2",
			"hwdevid":      inv.HardwareID,
			"tpm_version":  "2.0",
			"secure_boot":  "true",
			"bitlocker":    pick(r, []string{"on", "off"}),
			"domain_state": pick(r, []string{"workgroup", "entra_joined"}),
		},
	}
	always := append([]app(nil), windowsAlways...)
	switch m.maker {
	case "Dell Inc.":
		always = append(always, app{"Dell.CommandUpdate", "Dell Command | Update", "5.#.0"})
	case "LENOVO":
		always = append(always, app{"Lenovo.SystemUpdate", "Lenovo System Update", "5.08.0#.##"})
	default:
		always = append(always, app{"HP.SupportAssistant", "HP Support Assistant", "9.3#.##.0"})
	}
	inv.Apps = apps(r, always, windowsPool, 24+r.IntN(20)) // 24–43 programs
}

var windowsAlways = []app{
	{"Microsoft.Edge", "Microsoft Edge", "12#.0.2478.##"},
	{"Microsoft.EdgeWebView2Runtime", "Microsoft Edge WebView2 Runtime", "12#.0.2478.##"},
	{"Microsoft.VCRedist.2015+.x64", "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.38.33135", "14.38.33135.0"},
	{"Microsoft.VCRedist.2015+.x86", "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135", "14.38.33135.0"},
	{"Microsoft.OneDrive", "Microsoft OneDrive", "24.0##.0#0#.000#"},
	{"Microsoft.UpdateHealthTools", "Microsoft Update Health Tools", "5.72.0.0"},
}

var windowsPool = []app{
	{"Google.Chrome", "Google Chrome", "12#.0.6367.##"},
	{"Mozilla.Firefox", "Mozilla Firefox (x64 en-US)", "12#.0.1"},
	{"7zip.7zip", "7-Zip 23.01 (x64)", "23.01"},
	{"Notepad++.Notepad++", "Notepad++ (64-bit x64)", "8.6.#"},
	{"Microsoft.Office", "Microsoft 365 Apps for enterprise - en-us", "16.0.17###.#####"},
	{"Microsoft.Teams", "Microsoft Teams", "24###.###.####.####"},
	{"Zoom.Zoom", "Zoom Workplace (64-bit)", "6.0.#.####"},
	{"Adobe.Acrobat.Reader.64-bit", "Adobe Acrobat (64-bit)", "24.002.2####"},
	{"VideoLAN.VLC", "VLC media player", "3.0.2#"},
	{"Git.Git", "Git", "2.4#.#"},
	{"Python.Python.3.12", "Python 3.12.3 (64-bit)", "3.12.3150.0"},
	{"Microsoft.VisualStudioCode", "Microsoft Visual Studio Code", "1.8#.#"},
	{"SlackTechnologies.Slack", "Slack", "4.3#.##"},
	{"Cisco.SecureClient", "Cisco Secure Client - AnyConnect VPN", "5.1.#.##"},
	{"Microsoft.PCHealthCheck", "Windows PC Health Check", "3.#.2204.13001"},
	{"Oracle.JavaRuntimeEnvironment", "Java 8 Update 411 (64-bit)", "8.0.4110.9"},
	{"Microsoft.PowerShell", "PowerShell 7-x64", "7.4.#.0"},
	{"Greenshot.Greenshot", "Greenshot 1.2.10.6", "1.2.10.6"},
	{"DominikReichl.KeePass", "KeePass Password Safe 2.57", "2.57"},
	{"PuTTY.PuTTY", "PuTTY release 0.81 (64-bit)", "0.81.0.0"},
	{"WinSCP.WinSCP", "WinSCP 6.3.3", "6.3.3"},
	{"OpenJS.NodeJS.LTS", "Node.js", "20.1#.#"},
	{"Docker.DockerDesktop", "Docker Desktop", "4.#.#"},
	{"Microsoft.DotNet.DesktopRuntime.8", "Microsoft Windows Desktop Runtime - 8.0.5 (x64)", "8.0.5.33###"},
	{"Microsoft.DotNet.Runtime.8", "Microsoft .NET Runtime - 8.0.5 (x64)", "8.0.5.33###"},
	{"Cisco.Webex", "Webex", "44.#.0.#####"},
	{"Google.GoogleDrive", "Google Drive", "8#.0.#.0"},
	{"Dropbox.Dropbox", "Dropbox", "19#.4.####"},
	{"Spotify.Spotify", "Spotify", "1.2.3#.###"},
	{"Microsoft.PowerBI", "Microsoft Power BI Desktop (x64)", "2.12#.####.0"},
	{"TechSmith.Snagit.2024", "Snagit 2024", "24.#.#.####"},
	{"Citrix.Workspace", "Citrix Workspace 2402", "24.2.#.##"},
	{"VMware.HorizonClient", "VMware Horizon Client", "8.12.#.#####"},
	{"Microsoft.RemoteDesktopClient", "Remote Desktop", "1.2.5###.0"},
	{"Bitwarden.Bitwarden", "Bitwarden", "2024.#.#"},
	{"WiresharkFoundation.Wireshark", "Wireshark 4.2.5 x64", "4.2.5"},
	{"Microsoft.SQLServerManagementStudio", "SQL Server Management Studio", "20.#.##.0"},
	{"JetBrains.IntelliJIDEA.Community", "IntelliJ IDEA Community Edition 2024.1", "241.1####.##"},
	{"Postman.Postman", "Postman x64", "11.#.#"},
	{"Audacity.Audacity", "Audacity 3.5.1", "3.5.1"},
}

// Linux.
type distro struct {
	id, name, version, pretty, kernel, suffix string
}

var linuxDistros = []distro{
	{"ubuntu", "Ubuntu", "24.04", "Ubuntu 24.04 LTS", "6.8.0-3#-generic", "ubuntu0.24.04.#"},
	{"ubuntu", "Ubuntu", "22.04", "Ubuntu 22.04.4 LTS", "5.15.0-10#-generic", "ubuntu0.22.04.#"},
	{"debian", "Debian GNU/Linux", "12", "Debian GNU/Linux 12 (bookworm)", "6.1.0-2#-amd64", "deb12u#"},
}

func linux(r *rand.Rand, inv *agent.Inventory) {
	d := pick(r, linuxDistros)
	m := pick(r, windowsModels[:5]) // Dell and Lenovo ship Linux models
	hw := []byte(chars(r, hexLower, 32))
	hw[12] = '4'                                           // a version 4 UUID, as agent/linux derives it
	hw[16] = "89ab"[strings.IndexByte(hexLower, hw[16])%4] // RFC 4122 variant
	inv.OSVersion = d.version
	inv.HardwareID = string(hw)
	inv.Model = m.model
	inv.Name = "ws-" + strings.ToLower(chars(r, upperNum, 6))
	inv.Info = device.Info{
		Hostname:     inv.Name,
		Manufacturer: m.maker,
		SerialNumber: pcSerial(r, m.maker),
		OSName:       d.name,
		Kernel:       version(r, d.kernel),
		Arch:         "amd64",
		Attributes:   map[string]string{"pretty_name": d.pretty, "os_id": d.id},
	}
	base := make([]app, len(linuxBase))
	for i, p := range linuxBase {
		base[i] = app{p.id, p.name, p.ver + "-" + d.suffix}
	}
	inv.Apps = apps(r, base, linuxPool, 50+r.IntN(51)) // 50–100 packages
}

// linuxBase are on every install; the distribution suffix is added.
var linuxBase = []app{
	{"bash", "bash", "5.#.##"}, {"coreutils", "coreutils", "9.#"}, {"libc6", "libc6", "2.3#"},
	{"systemd", "systemd", "25#.#"}, {"dpkg", "dpkg", "1.2#.##"}, {"apt", "apt", "2.#.##"},
	{"openssl", "openssl", "3.0.1#"}, {"libssl3", "libssl3", "3.0.1#"}, {"openssh-client", "openssh-client", "1:9.#p1"},
	{"ca-certificates", "ca-certificates", "2023####"}, {"sudo", "sudo", "1.9.1#p2"}, {"util-linux", "util-linux", "2.3#.#"},
	{"grep", "grep", "3.1#"}, {"sed", "sed", "4.9"}, {"tar", "tar", "1.3#"}, {"gzip", "gzip", "1.1#"},
	{"findutils", "findutils", "4.9.0"}, {"procps", "procps", "2:4.0.#"}, {"iproute2", "iproute2", "6.#.0"},
	{"linux-firmware", "linux-firmware", "2024####.git"}, {"network-manager", "network-manager", "1.4#.#"},
	{"dbus", "dbus", "1.14.1#"}, {"tzdata", "tzdata", "2024a"}, {"python3", "python3", "3.1#.#"},
}

var linuxPool = []app{
	{"curl", "curl", "8.#.#"}, {"wget", "wget", "1.21.#"}, {"git", "git", "1:2.4#.#"}, {"vim", "vim", "2:9.1.0016"},
	{"nano", "nano", "7.2"}, {"htop", "htop", "3.3.0"}, {"tmux", "tmux", "3.4"}, {"zsh", "zsh", "5.9"},
	{"firefox", "firefox", "12#.0"}, {"thunderbird", "thunderbird", "1:115.1#.0"}, {"libreoffice-writer", "libreoffice-writer", "4:24.2.#"},
	{"libreoffice-calc", "libreoffice-calc", "4:24.2.#"}, {"gnome-shell", "gnome-shell", "46.0"}, {"gnome-terminal", "gnome-terminal", "3.52.0"},
	{"nautilus", "nautilus", "1:46.#"}, {"evince", "evince", "46.#"}, {"eog", "eog", "45.#"}, {"gedit", "gedit", "46.#"},
	{"pulseaudio", "pulseaudio", "1:16.1"}, {"pipewire", "pipewire", "1.0.#"}, {"cups", "cups", "2.4.#"},
	{"openssh-server", "openssh-server", "1:9.#p1"}, {"rsync", "rsync", "3.2.7"}, {"unzip", "unzip", "6.0"},
	{"zip", "zip", "3.0"}, {"jq", "jq", "1.7.1"}, {"make", "make", "4.3"}, {"gcc", "gcc", "4:13.2.0"},
	{"g++", "g++", "4:13.2.0"}, {"build-essential", "build-essential", "12.10"}, {"python3-pip", "python3-pip", "24.0"},
	{"python3-venv", "python3-venv", "3.12.3"}, {"golang-go", "golang-go", "2:1.22~2"}, {"nodejs", "nodejs", "18.19.1+dfsg"},
	{"docker.io", "docker.io", "24.0.7"}, {"containerd", "containerd", "1.7.12"}, {"podman", "podman", "4.9.3"},
	{"flatpak", "flatpak", "1.14.#"}, {"snapd", "snapd", "2.6#"}, {"fwupd", "fwupd", "1.9.1#"},
	{"ufw", "ufw", "0.36.2"}, {"apparmor", "apparmor", "4.0.0"}, {"cryptsetup", "cryptsetup", "2:2.7.0"},
	{"wireguard-tools", "wireguard-tools", "1.0.20210914"}, {"openvpn", "openvpn", "2.6.#"}, {"keepassxc", "keepassxc", "2.7.#"},
	{"vlc", "vlc", "3.0.20"}, {"gimp", "gimp", "2.10.36"}, {"inkscape", "inkscape", "1.2.2"}, {"remmina", "remmina", "1.4.35"},
	{"chromium", "chromium", "12#.0.6367.##"}, {"code", "code", "1.8#.#"}, {"slack-desktop", "slack-desktop", "4.3#.##"},
	{"zoom", "zoom", "6.0.#.####"}, {"teams-for-linux", "teams-for-linux", "1.4.##"}, {"postgresql-client-16", "postgresql-client-16", "16.#"},
	{"sqlite3", "sqlite3", "3.45.1"}, {"nmap", "nmap", "7.94"}, {"tcpdump", "tcpdump", "4.99.4"}, {"wireshark", "wireshark", "4.2.#"},
	{"ansible", "ansible", "9.2.0+dfsg"}, {"awscli", "awscli", "2.14.6"}, {"kubectl", "kubectl", "1.30.#"},
	{"shellcheck", "shellcheck", "0.9.0"}, {"ripgrep", "ripgrep", "14.1.0"}, {"fd-find", "fd-find", "9.0.0"},
	{"bat", "bat", "0.24.0"}, {"neovim", "neovim", "0.9.5"}, {"emacs", "emacs", "1:29.3"}, {"gnupg", "gnupg", "2.4.4"},
	{"pass", "pass", "1.7.4"}, {"lm-sensors", "lm-sensors", "1:3.6.0"}, {"smartmontools", "smartmontools", "7.4"},
	{"tlp", "tlp", "1.6.1"}, {"powertop", "powertop", "2.15"},
}
