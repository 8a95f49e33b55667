// Package scenarios holds pathcap's ground-truth scenario suite (issue
// #12): network namespaces in which every packet has a known fate and a
// counter kept by the kernel (/proc/net/snmp, /proc/net/netstat, nftables
// and tc statistics) or by the application says how many packets met it.
// Each scenario is recorded in-process (capture.Recorder into a
// recording.Writer) and analyzed with paths.Analyzer; the outcome counts
// must equal the counters exactly, with no packet of a scenario left
// unknown.
//
// The package has only tests: TestScenarios runs the suite on the host
// with the tracepoint backend, TestVMScenarios in a 6.12 VM with
// kprobe-multi. See docs/OUTCOMES.md for the outcome rules and the
// suite's latest results.
package scenarios
