package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/capture"
)

// errNothingToRecord is check's verdict on a host where record cannot
// record at all (exit status 1).
var errNothingToRecord = errors.New("record cannot record on this host")

// checkCommand is `record check`: what this host allows and what record
// will do.
var checkCommand = &cli.Command{
	Name:  "check",
	Usage: "print what this kernel and host allow and what record will do here, then exit (1 if nothing can be recorded)",
	Description: "Probes the kernel with a few tiny BPF programs (no packet is recorded): BTF, ring buffers,\n" +
		"tracepoints, each function backend, the optional kernel features and what record does\n" +
		"without each, SELinux, and the SELinux audit flood of Linux 5.6 to 5.12 (one\n" +
		"bpf_probe_read_kernel call is made in this process, at most one audit record).",
	Action: func(c *cli.Context) error {
		return runCheck(c.App.Writer)
	},
}

// runCheck probes the host and prints the report.
func runCheck(stdout io.Writer) error {
	c, err := capture.RunCheck()
	if err != nil {
		return err
	}
	printCheck(stdout, c)
	if !c.CanRecord() {
		return errNothingToRecord
	}
	return nil
}

// yesNo renders an availability.
func yesNo(err error) string {
	if err == nil {
		return "yes"
	}
	return "no: " + err.Error()
}

// printCheck writes the report of c.
func printCheck(w io.Writer, c *capture.Check) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	ver := ""
	if c.VersionFrom != "" && c.VersionFrom != "release" {
		ver = fmt.Sprintf(" (upstream %s, from %s's /proc/version)", c.Version, c.VersionFrom)
	}
	fmt.Fprintf(tw, "kernel\tLinux %s%s, %s\n", c.Release, ver, c.Arch)
	lock := c.Lockdown
	if lock == "" {
		lock = "unknown (securityfs not mounted)"
	}
	fmt.Fprintf(tw, "lockdown\t%s\n", lock)
	if c.Privileges != nil {
		fmt.Fprintf(tw, "privileges\tno: %v\n", c.Privileges)
		tw.Flush()
		fmt.Fprintln(w, "record will: not start; run it (and record check) as root, or grant CAP_BPF and CAP_PERFMON")
		return
	}
	fmt.Fprintf(tw, "privileges\tyes\n")
	fmt.Fprintf(tw, "BTF\t%s\n", yesNo(c.BTF))
	fmt.Fprintf(tw, "ring buffer\t%s\n", yesNo(c.RingBuf))
	fmt.Fprintf(tw, "tracepoints\t%d take an skb; BTF tracepoint programs: %s\n", c.Tracepoints, yesNo(c.TracepointErr))
	for _, b := range c.Backends {
		note := ""
		if c.Audit.Safe && b.Err == nil && (b.Name == capture.BackendKprobe || b.Name == capture.BackendKprobeMulti) {
			note = " (not used: audit-safe mode, see below)"
		}
		fmt.Fprintf(tw, "backend %s\t%s%s\n", b.Name, yesNo(b.Err), note)
	}
	for _, b := range c.Backends {
		if b.Name == capture.BackendFentry {
			// Tracing tc and XDP programs is fentry and fexit on them.
			fmt.Fprintf(tw, "--trace-tc, --trace-xdp\t%s\n", yesNo(b.Err))
		}
	}
	fmt.Fprintf(tw, "nftables chains (--netfilter)\t%s\n", yesNo(c.Netfilter))
	for _, f := range c.Features {
		switch {
		case f.Err != nil:
			fmt.Fprintf(tw, "%s (%s)\tnot probed: %v\n", f.Name, f.Since, f.Err)
		case f.Have:
			fmt.Fprintf(tw, "%s (%s)\tyes\n", f.Name, f.Since)
		default:
			fmt.Fprintf(tw, "%s (%s)\tno: %s\n", f.Name, f.Since, f.Without)
		}
	}
	a := c.Audit
	fmt.Fprintf(tw, "SELinux\t%s\n", a.SELinux)
	fmt.Fprintf(tw, "bpf_probe_read_kernel\t%s\n", a.Probe)
	if c.AuditErr != nil {
		fmt.Fprintf(tw, "\t(probe: %v)\n", c.AuditErr)
	}
	verdict := "no hazard: " + a.Why
	if a.Safe {
		verdict = "HAZARD: " + a.Why
	}
	fmt.Fprintf(tw, "audit flood\t%s\n", verdict)
	tw.Flush()

	if !c.CanRecord() {
		fmt.Fprintln(w, "record will: not start (it needs BTF, ring buffers and BTF tracepoint programs)")
		return
	}
	plan := fmt.Sprintf("record will: attach %d tracepoints", c.Tracepoints)
	if c.AutoBackend != capture.BackendTracepoint {
		plan += " and the " + c.AutoBackend + " backend (--backend auto)"
	} else {
		plan += " and no function backend (none is available)"
	}
	if a.Safe {
		plan += fmt.Sprintf("; audit-safe mode: no bpf_probe_read_kernel per event, so no packet bytes, no kprobes and no filter expression unless packet loads in place work, at most %d events/s (--probe-read on records bytes at one audit record per event)", capture.DefaultAuditSafeRate)
	}
	fmt.Fprintln(w, plan)
}
