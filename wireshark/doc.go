// Package wireshark holds pathcap.lua, a Wireshark post-dissector that
// turns pathcap's packet comments into display-filter fields; see
// README.md. The package's tests run the dissector under tshark.
package wireshark
