// Package wireshark holds pathcap.lua, a Wireshark post-dissector that
// turns pathcap's packet comments into display-filter fields, and the
// pathcap configuration profile (profile/), both embedded for the install
// commands; see README.md. The package's tests run them under tshark.
package wireshark
