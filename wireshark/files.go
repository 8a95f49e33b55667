package wireshark

import (
	"embed"
	"io/fs"
)

// files are the dissector and the profile, built into the binaries that
// install them (record and analyze wireshark-install).
//
//go:embed pathcap.lua profile/preferences profile/colorfilters profile/recent
var files embed.FS

// DissectorName is the file name of the Lua post-dissector.
const DissectorName = "pathcap.lua"

// ProfileSeed is the profile file that Wireshark rewrites with the user's
// state: installed only where absent.
const ProfileSeed = "recent"

// ProfileName is the name of the Wireshark configuration profile.
const ProfileName = "pathcap"

// Dissector returns pathcap.lua, the Lua post-dissector.
func Dissector() []byte {
	b, err := files.ReadFile(DissectorName)
	if err != nil {
		// The file is embedded at build time: it cannot be missing.
		return nil
	}
	return b
}

// Profile returns the files of the pathcap configuration profile
// (preferences, colorfilters, recent), at the top of the returned file
// system.
//
// Wireshark rewrites recent (column widths, window state) as it runs:
// installers should write it only where it does not exist.
func Profile() fs.FS {
	sub, err := fs.Sub(files, "profile")
	if err != nil {
		// fs.Sub fails only for an invalid directory name.
		return nil
	}
	return sub
}
