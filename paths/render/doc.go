// Package render writes what analyze shows of the packets that package
// paths rebuilds: the text report of each packet's path and the summary
// (TextWriter, WriteSummaryText), JSON lines and the summary as JSON
// (JSONEncoder, AppendSummaryJSON, with their schemas as Go types in
// PacketJSON and SummaryJSON), the Wireshark path view (ViewWriter), and
// one row per event for analytical databases (Export, ExportPackets).
//
// It only formats: every decision about a packet (its hops, what changed,
// its outcome) is made in package paths.
package render
