package main

import (
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/internal/wsinstall"
)

// wiresharkInstallCommand installs the pathcap profile and the Lua
// dissector for the current user: what reading recordings in Wireshark
// needs on a machine without record (record wireshark-install also enters
// record as a capture interface).
func wiresharkInstallCommand() *cli.Command {
	return &cli.Command{
		Name:  "wireshark-install",
		Usage: "install the Wireshark profile and Lua dissector for the current user",
		Description: "Writes the pathcap configuration profile into Wireshark's personal profiles\n" +
			"folder and pathcap.lua into its personal Lua plugins folder, and says where\n" +
			"(the folders tshark -G folders names, else Wireshark's defaults for this system).\n" +
			"Open a recording with them: wireshark -C pathcap FILE.",
		Action: func(c *cli.Context) error {
			folders := wsinstall.Detect(c.Context, runtime.GOOS)
			done, err := wsinstall.Install(wsinstall.Options{Folders: folders})
			if werr := wsinstall.WriteReport(c.App.Writer, "analyze", folders, done); err == nil {
				err = werr
			}
			return err
		},
	}
}
