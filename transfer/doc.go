// Package transfer moves files leaf to leaf over WebRTC data channels.
//
// An Engine serves uploads from a PieceSource and runs downloads from one or
// more sources in parallel. Nothing a peer sends is trusted: the content ID
// (see package content) vouches for the manifest, the manifest for every
// piece, and every piece is verified before it is written.
//
// # Signalling
//
// The downloader offers, the uploader answers; both signals travel through
// the supernodes (Config.Signal out, Engine.HandleSignal in) as wire.Signal,
// signed by the sender's node key over the session ID, both node IDs, the
// kind, the content ID and the SDP. Because the SDP carries the DTLS
// certificate fingerprint, the signature binds the encrypted data channel to
// the node ID end to end: a supernode that relays signals can drop them but
// cannot put itself in the middle.
//
// ICE is not trickled: each side waits until candidate gathering completes
// and sends one description with all its candidates. That costs the
// gathering time once per session and saves a stream of candidate signals
// through the supernodes. Candidate signals from a peer that does trickle
// are applied all the same.
//
//  1. The downloader creates a peer connection with one ordered, reliable
//     data channel labelled "canopy/xfer", gathers, and sends an Offer
//     carrying the content ID.
//  2. The uploader checks the signature and its upload slots (Config.
//     MaxUploads), looks the content up in its PieceSource, and answers, or
//     sends Close with the reason ("busy", "not shared").
//  3. ICE and DTLS connect and the data channel opens.
//
// Each side records the ICE candidate pair in use when the channel opens,
// and follows pion's reports if ICE switches pairs later, as a ConnInfo:
// direct or through a TURN relay, the candidate types and addresses, and
// the time from offer to open channel. Downloads return it per source
// (SourceReport.Conn), uploads log it, and Stats counts connections by
// path. Config.ICEServers supplies the STUN and TURN servers afresh for
// every connection, because TURN credentials expire.
//
// # Transfer
//
// Every data channel message is one wire envelope, below 64 KiB.
//
//  1. Manifest. The downloader sends ManifestRequest{First, Count} for up
//     to wire.MaxManifestHashes hashes at a time, up to Config.Window
//     requests ahead; the uploader answers each with a Manifest holding the
//     file's size, piece size and piece count and exactly the hashes from
//     First on (the whole rest, capped at MaxManifestHashes). The
//     downloader checks the header before allocating anything, rebuilds the
//     content.Manifest and verifies it against the content ID. A source
//     whose manifest does not match is dropped as a liar. Only the first
//     verified manifest is used; a source that connects after it skips this
//     step.
//  2. Pieces. A shared scheduler hands each source the lowest piece nobody
//     has claimed (pieces given back by dropped sources first). Each source
//     keeps up to Window PieceRequests in flight. The uploader serves
//     requests in order: it reads the piece, verifies it against its own
//     manifest (a file changed on disk yields TransferError "stale" rather
//     than wrong data), and sends it as PieceData blocks of 60 KiB in order.
//     It stops sending while more than 4 MiB is queued on the channel and
//     resumes when pion reports the queue drained (OnBufferedAmountLow).
//  3. Verification. The downloader reassembles the piece at the head of its
//     pipeline, verifies it against the manifest, and only then writes it
//     with WriteAt into OutDir/.NAME.canopy-part. A source that sends a bad
//     piece, a block of a piece it was not asked for next, or anything else
//     out of protocol is dropped and reported Bad; its claimed pieces go
//     back to the others and a spare source (beyond MaxSourcesPerDownload)
//     takes its place.
//  4. Completion. When every piece is written the downloader closes its
//     peer connections (the uploader's session ends with them), syncs the
//     file and moves it to OutDir/NAME without replacing anything: if NAME
//     exists it becomes "NAME (1).ext", "NAME (2).ext" and so on. On failure
//     or cancellation the temporary file is removed.
//
// The empty file needs no source: its content ID alone proves its content,
// so Download creates it directly.
package transfer
