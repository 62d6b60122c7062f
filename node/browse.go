package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-p2p/canopy/api"
	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/library"
	"github.com/canopy-p2p/canopy/people"
	"github.com/canopy-p2p/canopy/transfer"
	"github.com/canopy-p2p/canopy/wire"
)

// Sharing by trust, browsing and the network view (README.md, "Sharing by
// trust and browsing"; docs/protocol.md, section 11).

// shareSource is what the node's uploads serve from: the library, each
// request judged by the asker's trust in the people service, on this
// node's side. Files of a folder shared with contacts are served only to
// contacts, those of a folder for trusted contacts only to them, and a
// blocked node gets nothing.
type shareSource struct {
	lib    *library.Library
	access func(identity.NodeID) (people.Access, error)
}

// allowFor returns which visibilities a node of access a may see.
func allowFor(a people.Access) func(library.Visibility) bool {
	return func(v library.Visibility) bool {
		switch a {
		case people.AccessTrusted:
			return true
		case people.AccessContact:
			return v <= library.VisibleContacts
		case people.AccessStranger:
			return v == library.VisibleEveryone
		}
		return false
	}
}

func (s shareSource) accessOf(peer identity.NodeID) (people.Access, error) {
	a, err := s.access(peer)
	if err != nil {
		// The roster could not be read: the asker gets what anyone gets,
		// never more.
		return people.AccessStranger, nil
	}
	if a == people.AccessBlocked {
		return a, fmt.Errorf("%w: %s", transfer.ErrBlocked, peer.Short())
	}
	return a, nil
}

// Manifest serves what is shared with everyone (for a caller that does not
// say who asks).
func (s shareSource) Manifest(id content.ID) (content.Manifest, string, error) {
	return s.lib.ManifestFor(id, allowFor(people.AccessStranger))
}

func (s shareSource) Allowed(peer identity.NodeID) error {
	_, err := s.accessOf(peer)
	return err
}

func (s shareSource) ManifestFor(peer identity.NodeID, id content.ID) (content.Manifest, string, error) {
	a, err := s.accessOf(peer)
	if err != nil {
		return content.Manifest{}, "", err
	}
	return s.lib.ManifestFor(id, allowFor(a))
}

// listingEntryCost is a safe upper bound of one entry's CBOR bytes besides
// its path: the map header and keys, folder index, size and content ID.
const listingEntryCost = 64

// List is one page of what peer may browse: up to req.Max entries, cut so
// that the page's body stays within wire.MaxListingBody. The first page
// names every folder peer may see; later ones the folders of their entries.
func (s shareSource) List(peer identity.NodeID, req wire.ListRequest) (wire.Listing, error) {
	a, err := s.accessOf(peer)
	if err != nil {
		return wire.Listing{}, err
	}
	allow := allowFor(a)
	entries, more, err := s.lib.List(req.After, int(req.Max), allow)
	if err != nil {
		return wire.Listing{}, err
	}
	var page wire.Listing
	budget := wire.MaxListingBody
	folderIndex := make(map[string]uint16)
	addFolder := func(name string, v library.Visibility) (uint16, bool) {
		if i, ok := folderIndex[name]; ok {
			return i, true
		}
		name = wire.CutName(name, wire.MaxFolderName)
		if len(page.Folders) == wire.MaxListFolders || budget < listingEntryCost+len(name) {
			return 0, false
		}
		budget -= listingEntryCost + len(name)
		folderIndex[name] = uint16(len(page.Folders))
		page.Folders = append(page.Folders, wire.ListFolder{Name: name, Visibility: uint8(v)})
		return folderIndex[name], true
	}
	if req.After == "" {
		for _, f := range s.lib.ListFolders(allow) {
			addFolder(f.Name, f.Visibility)
		}
	}
	for i, e := range entries {
		if len(e.RelPath) > wire.MaxListPath || !validListPath(e.RelPath) {
			continue // a path the protocol cannot carry is left out, not sent broken
		}
		fi, ok := addFolder(e.Folder, e.Visibility)
		if !ok || budget < listingEntryCost+len(e.RelPath) {
			// The page is full: the next one starts at this entry.
			if i == 0 {
				return wire.Listing{}, errors.New("node: a listing entry does not fit a page")
			}
			page.Next = entries[i-1].Cursor
			return page, nil
		}
		budget -= listingEntryCost + len(e.RelPath)
		page.Entries = append(page.Entries, wire.ListEntry{Folder: fi, Path: e.RelPath, Size: e.Size, ID: e.ID})
	}
	if more && len(entries) > 0 {
		page.Next = entries[len(entries)-1].Cursor
	}
	if len(page.Next) > wire.MaxListCursor {
		return wire.Listing{}, errors.New("node: a listing cursor too long for the protocol")
	}
	return page, nil
}

// validListPath reports whether a path passes the listing's check (clean,
// relative): a file named "..." is fine, one whose name the protocol would
// read as a step out of its folder is not listed.
func validListPath(p string) bool {
	l := wire.Listing{Folders: []wire.ListFolder{{Name: "f"}}, Entries: []wire.ListEntry{{Path: p}}}
	return wire.CheckListing(&l) == nil
}

// Browse lists what node shares with this node: it finds where node is
// (its presence, else a locate), asks it over a data channel, marks what
// this node has already, and remembers the files as sources for Get, so
// that `canopy get ID` fetches a file a browse showed even when no
// supernode indexes it (a folder shared with contacts).
func (n *Node) Browse(ctx context.Context, node identity.NodeID, limit int) (api.BrowseResponse, error) {
	if node == n.id.ID {
		return api.BrowseResponse{}, fmt.Errorf("%w: that is this node (canopy library lists its shares)", errBrowse)
	}
	start := time.Now()
	via, err := n.people.Where(ctx, node)
	if err != nil && !errors.Is(err, context.Canceled) {
		return api.BrowseResponse{}, err
	}
	if len(via) == 0 {
		return api.BrowseResponse{}, fmt.Errorf("%w: %s is not online (no supernode knows it)", errNotOnline, node.Short())
	}
	src := wire.Source{Node: node, Via: via}
	res, err := n.leaf.Browse(ctx, src, limit)
	if err != nil {
		return api.BrowseResponse{}, err
	}
	out := api.BrowseResponse{Node: node.String(), Folders: []api.BrowseFolder{}, Files: make([]api.BrowseFile, 0, len(res.Files)),
		Truncated: res.Truncated, Pages: res.Pages, Path: res.Conn.Path}
	for _, f := range res.Folders {
		out.Folders = append(out.Folders, api.BrowseFolder{Name: f.Name, Visibility: library.Visibility(f.Visibility).String()})
	}
	have := n.haveContent()
	hits := make([]leaf.Result, 0, len(res.Files))
	for _, f := range res.Files {
		out.Files = append(out.Files, api.BrowseFile{Folder: f.Folder, Path: f.Path, Size: f.Size, ID: f.ID.String(), Have: have(f.ID)})
		hits = append(hits, leaf.Result{ID: f.ID, Name: path.Base(f.Path), Size: f.Size,
			Sources: []wire.Source{{Node: node, Via: via, Name: path.Base(f.Path)}}})
	}
	n.hits.put(hits)
	out.ElapsedMS = ms(time.Since(start))
	return out, nil
}

var (
	errBrowse    = errors.New("browse")
	errNotOnline = errors.New("not online")
)

// haveContent returns a test of whether this node has a file already: it
// shares it, or a download of it is done and its file is still there.
func (n *Node) haveContent() func(content.ID) bool {
	done := make(map[content.ID]string)
	if n.jobs != nil {
		for _, j := range n.jobs.List() {
			if j.State == downloads.Done && j.Path != "" {
				done[j.Content] = j.Path
			}
		}
	}
	return func(id content.ID) bool {
		if ok, err := n.lib.Has(id); err == nil && ok {
			return true
		}
		if p, ok := done[id]; ok {
			if _, err := os.Stat(p); err == nil {
				return true
			}
		}
		return false
	}
}

// LibraryStatus is the node's own shares with their visibility and the
// scans' state.
func (n *Node) LibraryStatus() (api.Library, error) {
	shares, err := n.lib.Shares()
	if err != nil {
		return api.Library{}, err
	}
	out := api.Library{Shares: make([]api.Share, 0, len(shares))}
	for _, s := range shares {
		out.Shares = append(out.Shares, api.Share{Dir: s.Dir, Name: s.Name, Visibility: s.Visibility.String(),
			Available: s.Available, Files: s.Files, Bytes: s.Bytes})
		out.Files += s.Files
		out.Bytes += s.Bytes
		if s.Visibility == library.VisibleEveryone {
			out.Public += s.Files
		}
	}
	st := n.lib.ScanState()
	out.Scanning, out.Hashing, out.ScanError = st.Scanning || n.rescanAsked(), st.Hashing, st.LastError
	if !st.LastScan.IsZero() {
		r := st.LastResult
		out.LastScan = &api.ScanSummary{At: st.LastScan.UTC().Format(time.RFC3339), Added: r.Added, Changed: r.Changed,
			Removed: r.Removed, Unchanged: r.Unchanged, Skipped: r.Skipped, Hashed: r.Hashed}
	}
	stats := n.lib.Stats()
	out.Scans, out.HashedFiles, out.HashedBytes = stats.Scans, stats.HashedFiles, stats.HashedBytes
	entries, err := n.lib.Entries()
	if err != nil {
		return api.Library{}, err
	}
	slices.SortFunc(entries, func(a, b library.Entry) int { return strings.Compare(a.Path, b.Path) })
	out.List = make([]api.LibraryFile, 0, min(len(entries), api.MaxLibraryFiles))
	for _, e := range entries {
		if len(out.List) == api.MaxLibraryFiles {
			out.Truncated = true
			break
		}
		out.List = append(out.List, api.LibraryFile{Path: e.Path, Name: e.Name, Size: e.Size, ID: e.ID.String()})
	}
	return out, nil
}

// SetShare shares dir with visibility v from now on (vis "none": stops
// sharing it), until the node stops, and rescans in the background: a
// change of visibility counts at once for browsing and downloads, and the
// supernodes get the new public index after the rescan (a full upload).
func (n *Node) SetShare(dir, vis string) error {
	if !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("%w: %q is not an absolute directory", errBrowse, dir)
	}
	dir = path.Clean(dir)
	remove := vis == "none"
	var v library.Visibility
	if !remove {
		var err error
		if v, err = library.ParseVisibility(vis); err != nil {
			return fmt.Errorf("%w: %v (or none)", errBrowse, err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", errBrowse, dir)
		}
	}
	n.sharesMu.Lock()
	defer n.sharesMu.Unlock()
	shares := slices.DeleteFunc(slices.Clone(n.shares), func(s library.Share) bool { return s.Dir == dir })
	if !remove {
		shares = append(shares, library.Share{Dir: dir, Visibility: v})
	}
	if err := n.lib.SetShares(shares); err != nil {
		return err
	}
	n.shares = shares
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if _, err := n.Rescan(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("scan after a share changed")
		}
		// Also when the scan found nothing new: the public index changed.
		n.leaf.IndexChanged()
	}()
	return nil
}

// Network is the network as the node sees it: the ring from this node's
// supernode role, or from the supernode its leaf side asks; and its
// contacts online.
func (n *Node) Network(ctx context.Context) (api.Network, error) {
	var info wire.NetworkInfo
	var from identity.NodeID
	if sn := n.Supernode(); sn != nil {
		info, from = sn.NetworkInfo(wire.MaxNetworkMembers, time.Now()), n.id.ID
	} else {
		atts := n.leaf.Supernodes()
		var err error
		if info, err = n.leaf.Network(ctx); err != nil {
			return api.Network{}, err
		}
		if len(atts) > 0 {
			from = atts[0]
		}
	}
	attached := make(map[identity.NodeID]bool)
	for _, id := range n.leaf.Supernodes() {
		attached[id] = true
	}
	out := api.Network{From: from.String(), Supernodes: make([]api.NetworkSupernode, 0, len(info.Members)),
		Totals:   api.NetworkTotals{Supernodes: info.Supernodes, Leaves: info.Leaves, Files: info.Files},
		Contacts: []api.OnlineContact{}}
	for _, m := range info.Members {
		out.Supernodes = append(out.Supernodes, api.NetworkSupernode{ID: m.ID.String(), Control: m.Control, Load: int(m.Load),
			Leaves: int(m.Leaves), Slots: int(m.Slots), Files: int(m.Files), Version: m.Software, UptimeS: int64(m.Uptime),
			Attached: attached[m.ID], Self: m.ID == n.id.ID})
	}
	cs, err := n.people.Contacts()
	if err != nil {
		return out, err
	}
	for _, c := range cs {
		if c.Online {
			out.Contacts = append(out.Contacts, api.OnlineContact{ID: c.ID, Name: c.Name, Nick: c.Nick, Trust: c.Trust, Where: c.Where})
		}
	}
	return out, nil
}

// isBlocked reports whether the user blocked id (its hits are hidden).
func (n *Node) isBlocked(id identity.NodeID) bool {
	a, err := n.people.AccessOf(id)
	return err == nil && a == people.AccessBlocked
}

// searchFilter is the leaf filter of an API search: its bounds, and the
// user's blocked nodes hidden.
func (n *Node) searchFilter(req api.SearchRequest) (leaf.Filter, error) {
	f := leaf.Filter{MinSize: req.MinSize, MaxSize: req.MaxSize, Hide: n.isBlocked}
	if req.MinSize < 0 || req.MaxSize < 0 || (req.MaxSize > 0 && req.MaxSize < req.MinSize) {
		return f, fmt.Errorf("bad size bounds: min %d, max %d", req.MinSize, req.MaxSize)
	}
	for _, e := range req.Ext {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "" || len(e) > 16 || strings.ContainsAny(e, "./\\") {
			return f, fmt.Errorf("bad extension %q", e)
		}
		f.Ext = append(f.Ext, e)
	}
	return f, nil
}

// browseAPI registers the endpoints of this file.
func (n *Node) browseAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/library", func(w http.ResponseWriter, r *http.Request) {
		l, err := n.LibraryStatus()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, l)
	})
	mux.HandleFunc("POST /v1/library/shares", func(w http.ResponseWriter, r *http.Request) {
		var req api.ShareSet
		if !n.readJSON(w, r, &req) {
			return
		}
		if err := n.SetShare(req.Dir, req.Visibility); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errBrowse) || errors.Is(err, library.ErrConfig) {
				code = http.StatusBadRequest
			}
			writeError(w, code, err)
			return
		}
		l, err := n.LibraryStatus()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, l)
	})
	mux.HandleFunc("GET /v1/browse/{node}", func(w http.ResponseWriter, r *http.Request) {
		id, err := identity.ParseNodeID(r.PathValue("node"))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("not a node ID: %w", err))
			return
		}
		limit := 0
		if s := r.URL.Query().Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a positive number", s))
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), maxBrowseTime)
		defer cancel()
		res, err := n.Browse(ctx, id, limit)
		if err != nil {
			code := http.StatusBadGateway
			switch {
			case errors.Is(err, errBrowse):
				code = http.StatusBadRequest
			case errors.Is(err, errNotOnline):
				code = http.StatusNotFound
			case errors.Is(err, transfer.ErrRefused):
				code = http.StatusForbidden
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/network", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		res, err := n.Network(ctx)
		if err != nil {
			code := http.StatusBadGateway
			if slow, ok := errors.AsType[*leaf.SlowDownError](err); ok {
				code = http.StatusTooManyRequests
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(slow.RetryAfter.Seconds()+0.999))))
			}
			writeError(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// maxBrowseTime bounds one browse through the API: connecting (up to the
// transfer connect timeout) and the pages.
const maxBrowseTime = 2 * time.Minute
