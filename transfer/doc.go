// Package transfer moves files leaf to leaf over WebRTC data channels.
//
// An Engine serves uploads from a PieceSource and runs downloads from one or
// more sources in parallel, each source over its own peer connection with
// one data channel. Nothing a peer sends is trusted: the content ID (see
// package content) vouches for the manifest, the manifest for every piece,
// and every piece is verified before it is written. Signals (offer, answer,
// close) are signed by the sender's node key and travel through the
// supernodes (Config.Signal out, Engine.HandleSignal in). Each connection is
// reported as a ConnInfo (direct or relayed, candidates, connect time).
//
// A download may be resumable (Request.Resume): it then writes to the
// caller's part file, skips the pieces the caller says it holds, and reports
// pieces only once the part file is fsynced, so that the caller's record of
// them (package downloads) never leads the file.
//
// The protocol itself — signalling, the manifest and piece exchange, flow
// control, verification, completion and every limit — is specified in
// docs/protocol.md, section 7, at the root of the repository.
package transfer
