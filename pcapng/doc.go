// Package pcapng reads and writes pcap-ng capture files.
//
// The Reader streams a file block by block: its memory is bounded by the
// largest block (and by a configurable limit, 16 MiB by default), never by
// the file size. It understands every block type of the pcap-ng
// specification (section header, interface description, enhanced, simple
// and obsolete packet, name resolution, interface statistics, decryption
// secrets and custom blocks), both byte orders, and files made of several
// sections. Unknown block types are returned to the caller and skipped by
// the packet-level calls. Every standard option is decoded into a typed
// field; custom and unknown options stay available in raw form.
//
// Input is treated as untrusted: every length is checked before it is
// used, and every problem is reported as a *FormatError that names the
// block type, its byte offset in the file and what was wrong.
//
// The Writer builds each block completely in memory before handing it to
// the underlying io.Writer, so a file is never left with a half-written
// block in the middle; it refuses (with an error, not corrupt output)
// options that do not fit, packets larger than the interface's snapshot
// length and packets for interfaces that were never described.
//
// Packet data, comments and other byte slices returned by the Reader alias
// its internal buffer: they are valid until the next call that advances
// the Reader. Copy them to keep them.
package pcapng
