package leaf

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/internal/textsafe"
	"github.com/canopy-p2p/canopy/wire"
)

// Result is one file found on the network, with every source that reported it.
type Result struct {
	ID      content.ID    `json:"id"`
	Name    string        `json:"name"`
	Size    int64         `json:"size"`
	Sources []wire.Source `json:"-"`
	// Local says this node shares the file itself (it is not among Sources).
	Local bool `json:"local"`
}

// DefaultSearchLimit is how many distinct files a search collects before it
// stops early. Gnutella's dynamic query stopped near 150 results (50 for a
// leaf's own query); a person reads far fewer (docs/field-numbers.md).
const DefaultSearchLimit = 100

// Search sends a keyword query through every attached supernode and collects
// hits until ctx ends or limit distinct files arrived. onHit, if set, is called
// with every batch as it arrives (from the calling goroutine).
func (l *Leaf) Search(ctx context.Context, words string, limit int, onHit func([]Result)) ([]Result, error) {
	return l.SearchFiltered(ctx, words, limit, Filter{}, onHit)
}

// Filter narrows a search on the leaf's side: what it drops is neither
// shown nor counted against the limit.
type Filter struct {
	// MinSize and MaxSize bound a file's size in bytes (MaxSize 0: none).
	MinSize, MaxSize int64
	// Ext are the extensions wanted, lower case without the dot ("mp3");
	// empty: any. A file matches by the name it is shown under.
	Ext []string
	// Hide, if set, names the sources to leave out (the user's blocked
	// nodes): a file only they offer is not shown at all.
	Hide func(identity.NodeID) bool
}

// keeps reports whether a result (with its sources already filtered)
// passes the size and extension bounds.
func (f Filter) keeps(r *Result) bool {
	if r.Size < f.MinSize || (f.MaxSize > 0 && r.Size > f.MaxSize) {
		return false
	}
	if len(f.Ext) == 0 {
		return true
	}
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(r.Name), "."))
	return slices.Contains(f.Ext, ext)
}

// SearchFiltered is Search with a filter applied to the hits as they come.
func (l *Leaf) SearchFiltered(ctx context.Context, words string, limit int, f Filter, onHit func([]Result)) ([]Result, error) {
	words = strings.TrimSpace(words)
	if words == "" {
		return nil, errors.New("leaf: empty search")
	}
	if len(words) > wire.MaxQueryWords {
		return nil, fmt.Errorf("leaf: search text is %d bytes, the limit is %d", len(words), wire.MaxQueryWords)
	}
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	return l.query(ctx, wire.Query{Words: words, Limit: limit}, limit, &f, onHit)
}

// Locate asks the network for the sources of one file. It returns as soon as a
// first answer has had a short grace period for others to join it, or when ctx
// ends.
func (l *Leaf) Locate(ctx context.Context, id content.ID) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timer *time.Timer
	res, err := l.query(ctx, wire.Query{Content: id, Limit: 1}, 1<<30, nil, func([]Result) {
		if timer == nil {
			timer = time.AfterFunc(300*time.Millisecond, cancel)
		}
	})
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		return Result{}, err
	}
	for _, r := range res {
		if r.ID == id {
			return r, nil
		}
	}
	return Result{}, fmt.Errorf("%w: %s", ErrNoSources, id)
}

// ErrNoSources is returned when nobody on the network has a file.
var ErrNoSources = errors.New("leaf: no source found for file")

// ErrSlowDown is matched (errors.Is) by the *SlowDownError of a search that
// found nothing while supernodes refused it for the leaf's query rate.
var ErrSlowDown = errors.New("leaf: supernodes ask to slow down")

// maxRetryAfter caps the wait a supernode may ask for: a supernode's own
// bound is 10 s, and one that asks more is not believed.
const maxRetryAfter = time.Minute

// SlowDownError says that a search came back empty because supernodes did
// not run it: this leaf queried faster than their per-leaf rate. The
// caller should wait RetryAfter before searching again; an empty result
// would have been a lie.
type SlowDownError struct {
	// RetryAfter is the longest wait the refusing supernodes asked for.
	RetryAfter time.Duration
	// Refused is how many supernodes refused, of Asked.
	Refused, Asked int
}

func (e *SlowDownError) Error() string {
	return fmt.Sprintf("leaf: %d of %d supernodes refused the search for its rate: slow down, retry after %s", e.Refused, e.Asked, e.RetryAfter)
}

// Is makes errors.Is(err, ErrSlowDown) hold.
func (e *SlowDownError) Is(target error) bool { return target == ErrSlowDown }

func (l *Leaf) query(ctx context.Context, q wire.Query, limit int, f *Filter, onHit func([]Result)) ([]Result, error) {
	e, err := wire.New(wire.TypeQuery, &q)
	if err != nil {
		return nil, err
	}
	e.TTL = wire.DefaultTTL
	ch := make(chan wire.QueryHit, 64)
	l.mu.Lock()
	l.pending[e.ID] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pending, e.ID)
		l.mu.Unlock()
	}()
	sent := 0
	// asked are the supernodes the query went to: only their refusals
	// count, a supernode further on never refuses for this leaf's rate.
	asked := map[identity.NodeID]bool{}
	for _, c := range l.links() {
		if c.Send(e) == nil {
			sent++
			asked[c.Peer()] = true
		}
	}
	if sent == 0 {
		return nil, ErrNotAttached
	}
	agg := newAggregate(l.id)
	agg.localName = l.localName
	agg.filter = f
	var slow SlowDownError
	refused := map[identity.NodeID]bool{}
	// done returns the results, or the refusal when there are none: a
	// search some supernodes did not run is not known to have no results.
	done := func() ([]Result, error) {
		if agg.len() == 0 && slow.Refused > 0 {
			return nil, &slow
		}
		return agg.results(), nil
	}
	for agg.len() < limit {
		select {
		case <-ctx.Done():
			return done()
		case qh := <-ch:
			if qh.RetryAfterMs > 0 {
				if !asked[qh.From] {
					continue
				}
				if !refused[qh.From] {
					refused[qh.From] = true
					slow.Refused, slow.Asked = slow.Refused+1, sent
				}
				slow.RetryAfter = max(slow.RetryAfter, min(time.Duration(qh.RetryAfterMs)*time.Millisecond, maxRetryAfter))
				if slow.Refused == sent {
					// Every supernode asked refused: nothing will come.
					return done()
				}
				continue
			}
			batch := agg.add(qh)
			if onHit != nil && len(batch) > 0 {
				onHit(batch)
			}
		}
	}
	return done()
}

// aggregate merges hits from many supernodes: one result per content ID, its
// sources de-duplicated by node with their supernode routes merged.
//
// The name shown for a result: this node's own name when it shares the file
// itself (localName), since a user expects to see a file they share under
// the name they gave it, whatever others call it. Otherwise the name of the
// result's first source (the one a download asks first), in that source's
// own words: each source in a hit carries the name its owner shares the
// file under (wire.Source.Name), and every source keeps its own in
// Result.Sources, so a search shows names per source. The hit's Name, a
// count of owners at one supernode that sybils attached to it can win, is
// used only when a supernode older than per-source names sent none. So no
// number of sybils renames the file for a user who downloads from another
// source: the download is saved under the name the delivering source uses
// (transfer.Request.Name, transfer.SourceReport.Name). Which source is
// listed first is still the order of the answers; trust levels (contacts)
// do not exist yet, and when they do a trusted source belongs first.
// Every name is bounded and cleaned (textsafe.Bound).
type aggregate struct {
	self  identity.NodeID
	order []content.ID
	byID  map[content.ID]*Result
	// localName, if set, returns this node's own name for a file it
	// shares, or "".
	localName func(content.ID) string
	// ownNamed holds the results whose local name was asked for, true
	// for those it named.
	ownNamed map[content.ID]bool
	// filter, if set, drops sources and results (Filter); dropped holds
	// the results it dropped, which later hits do not bring back.
	filter  *Filter
	dropped map[content.ID]bool
}

func newAggregate(self identity.NodeID) *aggregate {
	return &aggregate{self: self, byID: make(map[content.ID]*Result)}
}

func (a *aggregate) len() int { return len(a.order) }

// localName is the leaf's own name for a file it shares: the base name of
// the file its library serves it from, bounded like an index name. It is
// "" when the library does not serve the content (any more).
func (l *Leaf) localName(id content.ID) string {
	if l.cfg.Library == nil {
		return ""
	}
	_, path, err := l.cfg.Library.Manifest(id)
	if err != nil {
		return ""
	}
	return textsafe.Bound(indexName(filepath.Base(path)), wire.MaxIndexName)
}

// add merges a batch and returns the results it touched.
func (a *aggregate) add(qh wire.QueryHit) []Result {
	var touched []Result
	for _, h := range qh.Hits {
		id := content.ID(h.ID)
		if a.dropped[id] {
			continue
		}
		if a.filter != nil && a.filter.Hide != nil {
			h.Sources = slices.DeleteFunc(slices.Clone(h.Sources), func(s wire.Source) bool { return a.filter.Hide(s.Node) })
			if len(h.Sources) == 0 {
				continue // only hidden nodes offer it, here
			}
		}
		r := a.byID[id]
		isNew := r == nil
		if isNew {
			r = &Result{ID: id, Size: h.Size}
		}
		for _, s := range h.Sources {
			if s.Node == a.self {
				r.Local = true // our own copy is no source for us
				continue
			}
			name := textsafe.Bound(s.Name, wire.MaxIndexName)
			i := slices.IndexFunc(r.Sources, func(x wire.Source) bool { return x.Node == s.Node })
			if i < 0 {
				r.Sources = append(r.Sources, wire.Source{Node: s.Node, Via: slices.Clone(s.Via), Name: name})
				continue
			}
			if r.Sources[i].Name == "" {
				// Known through an older supernode, which sent no name.
				r.Sources[i].Name = name
			}
			for _, v := range s.Via {
				if !slices.Contains(r.Sources[i].Via, v) {
					r.Sources[i].Via = append(r.Sources[i].Via, v)
				}
			}
		}
		named, asked := a.ownNamed[id]
		if r.Local && a.localName != nil && !asked {
			if a.ownNamed == nil {
				a.ownNamed = make(map[content.ID]bool)
			}
			n := a.localName(id)
			named = n != ""
			a.ownNamed[id] = named
			if named {
				r.Name = n
			}
		}
		if !named {
			r.Name = resultName(r.Sources, h.Name, r.Name)
		}
		if isNew {
			if a.filter != nil && !a.filter.keeps(r) {
				if a.dropped == nil {
					a.dropped = make(map[content.ID]bool)
				}
				a.dropped[id] = true
				continue
			}
			a.byID[id] = r
			a.order = append(a.order, id)
		}
		touched = append(touched, *r)
	}
	return touched
}

// resultName is the name of a result not named by this node: its first
// source's own name, else (no source named it: older supernodes) the name
// shown so far, else the hit's.
func resultName(sources []wire.Source, hitName, shown string) string {
	for _, s := range sources {
		if s.Name != "" {
			return s.Name
		}
	}
	if shown != "" {
		return shown
	}
	return textsafe.Bound(hitName, wire.MaxIndexName)
}

func (a *aggregate) results() []Result {
	out := make([]Result, 0, len(a.order))
	for _, id := range a.order {
		out = append(out, *a.byID[id])
	}
	slices.SortStableFunc(out, func(x, y Result) int { return len(y.Sources) - len(x.Sources) })
	return out
}
