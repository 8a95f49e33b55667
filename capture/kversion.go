package capture

import (
	"fmt"
	"regexp"
	"strconv"
)

// KernelVersion is an upstream Linux version: major.minor.patch.
type KernelVersion struct {
	Major, Minor, Patch int
}

// String returns "5.10.223".
func (v KernelVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// Less reports whether v is older than w.
func (v KernelVersion) Less(w KernelVersion) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// IsZero reports whether v is unknown.
func (v KernelVersion) IsZero() bool { return v == KernelVersion{} }

var (
	// The leading version of a release string: "5.10.0-32-cloud-amd64",
	// "6.12.117+deb12-cloud-amd64", "5.14.0-427.el9.x86_64".
	releaseVersion = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)
	// Debian and Ubuntu put the upstream version of the source package in
	// /proc/version: "... #1 SMP Debian 5.10.223-1 (2024-08-10)",
	// "... #23-Ubuntu SMP ... 5.11.22" (Ubuntu's /proc/version_signature:
	// "Ubuntu 5.11.0-22.23-generic 5.11.22").
	// The compiler's version comes earlier ("gcc-10 (Debian 10.2.1-6)"):
	// only the part after the build number counts.
	debianVersion = regexp.MustCompile(`#\d+.*\bDebian (\d+)\.(\d+)\.(\d+)`)
	ubuntuVersion = regexp.MustCompile(`^Ubuntu \S+ (\d+)\.(\d+)\.(\d+)`)
)

// ParseKernelVersion returns the upstream version of a kernel from its
// release string (uname -r) and, where the distribution numbers its
// releases apart from upstream, from /proc/version or Ubuntu's
// /proc/version_signature (either may be ""). Debian's "5.10.0-32" is
// upstream 5.10.223, named only in /proc/version. The second result says
// where the version came from: "release", "Debian" or "Ubuntu".
func ParseKernelVersion(release, procVersion, signature string) (KernelVersion, string) {
	if m := ubuntuVersion.FindStringSubmatch(signature); m != nil {
		return versionOf(m[1], m[2], m[3]), "Ubuntu"
	}
	if m := debianVersion.FindStringSubmatch(procVersion); m != nil {
		return versionOf(m[1], m[2], m[3]), "Debian"
	}
	if m := releaseVersion.FindStringSubmatch(release); m != nil {
		return versionOf(m[1], m[2], m[3]), "release"
	}
	return KernelVersion{}, ""
}

// versionOf builds a version from its decimal parts ("" is 0).
func versionOf(major, minor, patch string) KernelVersion {
	n := func(s string) int {
		v, _ := strconv.Atoi(s)
		return v
	}
	return KernelVersion{n(major), n(minor), n(patch)}
}
