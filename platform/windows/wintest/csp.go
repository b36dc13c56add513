package wintest

import (
	"sort"
	"strings"

	"github.com/custos-uem/custos/platform/windows/syncml"
)

// Tree is the emulator's small CSP tree: node values by LocURI, and what
// Exec does. Unknown nodes answer 404, like Windows.
type Tree struct {
	nodes map[string]string
	// Execs counts the Exec commands run, by node.
	Execs map[string]int
	// ProviderID is the DMClient provider the device is enrolled with.
	ProviderID string
	// ChannelURI is what ./Vendor/MSFT/DMClient/Provider/<ID>/Push/ChannelURI
	// answers once a PFN was written (the WNS channel the device listens on).
	ChannelURI string
	// Unenrolled is set by the DMClient Unenroll Exec.
	Unenrolled bool
}

// NewTree returns a tree with DevInfo and DevDetail filled in.
func NewTree(devID, providerID string) *Tree {
	t := &Tree{nodes: map[string]string{}, Execs: map[string]int{}, ProviderID: providerID}
	for k, v := range map[string]string{
		"./DevInfo/DevId": devID, "./DevInfo/Man": "Contoso", "./DevInfo/Mod": "Surface Emulator", "./DevInfo/DmV": "1.3",
		"./DevInfo/Lang": "en-US", "./DevDetail/SwV": "10.0.22631.2428", "./DevDetail/OEM": "Contoso", "./DevDetail/HwV": "1.0",
		"./DevDetail/Ext/Microsoft/OSPlatform": "Windows 11 Enterprise", "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": "EMU-0001",
		"./DevDetail/Ext/Microsoft/DeviceName": "DESKTOP-EMU", "./DevDetail/Ext/Microsoft/ProcessorArchitecture": "9",
		"./DevDetail/Ext/Microsoft/TotalRAM": "16384", "./DevDetail/Ext/Microsoft/TotalStorage": "512000",
	} {
		t.nodes[k] = v
	}
	return t
}

// Get returns a node's value.
func (t *Tree) Get(uri string) (string, bool) {
	if uri == t.pushNode("ChannelURI") {
		if _, ok := t.nodes[t.pushNode("PFN")]; ok && t.ChannelURI != "" {
			return t.ChannelURI, true
		}
		return "", false
	}
	if uri == t.pushNode("Status") {
		if _, ok := t.nodes[t.pushNode("PFN")]; ok {
			return "0", true
		}
		return "", false
	}
	v, ok := t.nodes[uri]
	return v, ok
}

// Nodes returns the nodes under prefix, sorted.
func (t *Tree) Nodes(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range t.nodes {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// Keys returns every node, sorted.
func (t *Tree) Keys() []string {
	var ks []string
	for k := range t.nodes {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (t *Tree) pushNode(leaf string) string {
	return "./Vendor/MSFT/DMClient/Provider/" + t.ProviderID + "/Push/" + leaf
}

// writable reports the subtrees a server may Add/Replace/Delete.
func (t *Tree) writable(uri string) bool {
	for _, p := range []string{"./Device/Vendor/MSFT/Policy/Config/", "./Vendor/MSFT/Policy/Config/", "./Vendor/MSFT/WiFi/Profile/",
		"./Vendor/MSFT/VPNv2/", "./Device/Vendor/MSFT/BitLocker/", "./Device/Vendor/MSFT/RootCATrustedCertificates/",
		"./Vendor/MSFT/ClientCertificateInstall/", t.pushNode("PFN")} {
		if strings.HasPrefix(uri, p) {
			return true
		}
	}
	return false
}

func (t *Tree) exists(uri string) bool {
	if _, ok := t.nodes[uri]; ok {
		return true
	}
	for k := range t.nodes {
		if strings.HasPrefix(k, uri+"/") {
			return true
		}
	}
	return false
}

// run executes one command (not Atomic) and returns its status and, for a
// Get, results.
func (t *Tree) run(c syncml.Command) (string, []syncml.Item) {
	if len(c.Items) == 0 {
		return syncml.StatusBadRequest, nil
	}
	code := syncml.StatusOK
	var results []syncml.Item
	for _, it := range c.Items {
		uri := it.Target
		switch c.Name {
		case syncml.CmdGet:
			v, ok := t.Get(uri)
			if !ok {
				return syncml.StatusNotFound, nil
			}
			results = append(results, syncml.Item{Source: uri, Meta: &syncml.Meta{Format: "chr"}, Data: v})
		case syncml.CmdAdd:
			if !t.writable(uri) {
				return syncml.StatusNotFound, nil
			}
			if _, ok := t.nodes[uri]; ok {
				return syncml.StatusAlreadyExists, nil
			}
			t.nodes[uri] = it.Data
		case syncml.CmdReplace:
			if !t.writable(uri) {
				return syncml.StatusNotFound, nil
			}
			t.nodes[uri] = it.Data
		case syncml.CmdDelete:
			if !t.writable(uri) || !t.exists(uri) {
				return syncml.StatusNotFound, nil
			}
			for k := range t.nodes {
				if k == uri || strings.HasPrefix(k, uri+"/") {
					delete(t.nodes, k)
				}
			}
		case syncml.CmdExec:
			switch {
			case uri == "./Vendor/MSFT/RemoteLock/Lock":
			case uri == "./Device/Vendor/MSFT/RemoteWipe/doWipe", uri == "./Device/Vendor/MSFT/Reboot/RebootNow":
				code = syncml.StatusAccepted // asynchronous (remotewipe-csp, reboot-csp)
			case uri == "./Vendor/MSFT/DMClient/Provider/"+t.ProviderID+"/Unenroll" && it.Data == t.ProviderID:
				t.Unenrolled = true
			case strings.HasPrefix(uri, "./Vendor/MSFT/ClientCertificateInstall/SCEP/") && strings.HasSuffix(uri, "/Install/Enroll"):
				code = syncml.StatusAccepted
			default:
				return syncml.StatusNotFound, nil
			}
			t.Execs[uri]++
		default:
			return syncml.StatusOptionalFeature, nil
		}
	}
	return code, results
}

// snapshot and restore implement Atomic's all-or-nothing.
func (t *Tree) snapshot() map[string]string {
	m := make(map[string]string, len(t.nodes))
	for k, v := range t.nodes {
		m[k] = v
	}
	return m
}
