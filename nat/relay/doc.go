// Package relay is a supernode's TURN relay (RFC 8656), the path of last
// resort for two leaves whose NATs do not let ICE connect them directly:
// Relay serves TURN over UDP and TCP, Creds issues and checks the per-leaf,
// time-limited credentials leaves authenticate with, and Quotas bounds what
// each leaf and all of them together may take from the supernode's upstream.
//
// Credentials live here rather than with the ICE configuration because only
// the relay that issues them can check them; the relay hands them out as
// ice.TURNServer values. Quotas are part of the relay because they are
// enforced per allocation as datagrams pass.
package relay
