package dep

// ParsePlistForTest exposes the plist layer of ParseMachineInfo to the
// fuzz test, which cannot sign its inputs.
var ParsePlistForTest = parsePlist
