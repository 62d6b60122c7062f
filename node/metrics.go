package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/downloads"
	"github.com/canopy-p2p/canopy/gossip"
	"github.com/canopy-p2p/canopy/index"
	"github.com/canopy-p2p/canopy/leaf"
	"github.com/canopy-p2p/canopy/nat/relay"
	"github.com/canopy-p2p/canopy/nat/stun"
	"github.com/canopy-p2p/canopy/promotion"
	"github.com/canopy-p2p/canopy/supernode"
)

// MetricsRegistry is where a node registers its Prometheus metrics and
// where GET /metrics gathers them from. *prometheus.Registry is one.
type MetricsRegistry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// The paths of the local API's debugging endpoints.
const (
	// MetricsPath serves the node's metrics in the Prometheus text format.
	MetricsPath = "/metrics"
	// PProfPath is where net/http/pprof's handlers are mounted when
	// Config.PProf is set.
	PProfPath = "/debug/pprof/"
)

// Most metrics are read at scrape time from the counters the node's parts
// keep anyway (link, gossip, relay, API and transfer refusals, the index,
// the transfer engine, the download jobs), by nodeCollector: nothing is
// counted twice, and a scrape costs a few snapshots. Only what no part
// counts is counted here: role changes and decisions, and searches with
// their latency.

// descs are every metric nodeCollector reports, for Describe.
var descs []*prometheus.Desc

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc("canopy_"+name, help, labels, nil)
	descs = append(descs, d)
	return d
}

// The node, whatever its role.
var (
	descRole        = newDesc("role", "The role the node plays now: 1 for it, 0 for the other.", "role")
	descAttached    = newDesc("attached_supernodes", "Supernodes the leaf side is attached to now (its own supernode role included).")
	descPending     = newDesc("pending_connections", "Connections accepted on the control port that have not said hello yet.")
	descShared      = newDesc("shared_files", "Files the node shares.")
	descScans       = newDesc("library_scans_total", "Scans of the shared directories started.")
	descHashed      = newDesc("library_hashed_bytes_total", "Bytes hashed by library scans.")
	descLinkRefused = newDesc("link_refusals_total", "Connections and links refused by the control listener and the supernode role, by reason.", "reason")
	descReplaced    = newDesc("links_replaced_total", "Links closed because their node opened a newer one of the same role.")
	descAPIRefused  = newDesc("api_refusals_total", "Local API requests refused, by reason.", "reason")
	descRoleRefused = newDesc("role_refusals_total", "Role changes refused: step-in requests from a supernode not alone in its ring, promotions with no address others could reach.", "reason")
	descNAT         = newDesc("nat_info", "The NAT kind the last discovery found (unknown before the first): 1 for it.", "kind")
	descReach       = newDesc("reachability", "The dial-back reachability verdict now: 1 for it, 0 for the others.", "verdict")

	descXferActive   = newDesc("transfers_active", "Transfers running now: uploads holding a slot (up), downloads running (down).", "direction")
	descXferBytes    = newDesc("transfer_bytes_total", "Verified piece data sent (up) and received (down), by the path of the connection: direct (leaf to leaf) or relayed (through TURN).", "direction", "path")
	descXferPieces   = newDesc("transfer_pieces_total", "Pieces downloads received, by result: verified and written, or failed verification.", "result")
	descXferServed   = newDesc("transfer_pieces_served_total", "Pieces uploads sent.")
	descXferConns    = newDesc("transfer_connections_total", "Peer connections whose data channel opened, by path.", "path")
	descXferBadSrc   = newDesc("transfer_bad_sources_total", "Download sources dropped for bad data.")
	descXferAccepted = newDesc("transfer_offers_accepted_total", "Transfer offers answered (an upload slot is taken only when the data channel opens).")
	descXferRefused  = newDesc("transfer_refusals_total", "Transfer offers refused, by reason.", "reason")
	descXferSignals  = newDesc("transfer_signals_dropped_total", "Transfer signals ignored: bad signature, not for this node, unknown session, full inbox.")
	descXferQueued   = newDesc("transfer_offers_queued_total", "Offers answered with a place in the upload queue (every slot taken).")
	descXferLimit    = newDesc("transfer_limit_bytes_per_second", "The bandwidth limit on transfers, by direction (0: none).", "direction")
	descJobs         = newDesc("download_jobs", "Download jobs by state (the finished ones are the history kept).", "state")

	descPeopleRefused = newDesc("people_refusals_total", "Letters and presence refused by this node's person, by reason.", "reason")
	descPeopleLetters = newDesc("people_letters_total", "Letters this node's person received (in) and sent (out).", "direction")
)

// The supernode role. The gauges are 0 while the node is a leaf; the
// counters add up every supernode stint of this process, so that they
// never go down across a demotion and a promotion.
var (
	descLeaves      = newDesc("supernode_leaves", "Leaves attached to this supernode.")
	descRingMembers = newDesc("ring_members", "Supernodes in the ring as this supernode sees it, itself included.")
	descRingLinks   = newDesc("ring_links", "Ring members this supernode has a control link to.")
	descIdxEntries  = newDesc("index_entries", "Entries (owner, content, name) in the partial index.")
	descIdxOwners   = newDesc("index_owners", "Owners (leaves) with at least one file in the partial index.")
	descIdxTerms    = newDesc("index_terms", "Distinct words in the partial index.")
	descIdxBytes    = newDesc("index_bytes", "Memory the partial index accounts for, in bytes.")
	descRelayAllocs = newDesc("relay_allocations", "TURN allocations open now.")
	descRelayLeaves = newDesc("relay_allocating_leaves", "Leaves holding at least one TURN allocation now.")
	descRelayTCP    = newDesc("relay_pending_tcp_connections", "TURN-over-TCP connections that have not authenticated yet.")

	descQueries      = newDesc("supernode_queries_total", "Queries this supernode received, by where from: its leaves or ring peers.", "from")
	descDupQueries   = newDesc("supernode_duplicate_queries_total", "Queries dropped as already seen.")
	descHitsRouted   = newDesc("supernode_hits_routed_total", "Query hits routed back towards their searchers.")
	descSignals      = newDesc("supernode_signals_relayed_total", "WebRTC signals relayed between leaves.")
	descDialBacks    = newDesc("supernode_dialbacks_total", "Reachability dial-backs made for leaves.")
	descSNRefused    = newDesc("supernode_refusals_total", "Requests the supernode role refused or dropped, by reason.", "reason")
	descPaced        = newDesc("supernode_paced_reads_total", "Times a leaf's link was read more slowly: for its refusals or its index rate.", "why")
	descIdxRefused   = newDesc("index_refusals_total", "Index updates refused by the partial index's bounds, by reason.", "reason")
	descGossip       = newDesc("gossip_refusals_total", "What the gossip ring refused, by reason.", "reason")
	descRelayRefused = newDesc("relay_refusals_total", "TURN requests and connections the relay refused, by reason.", "reason")
	descRelayEnded   = newDesc("relay_allocations_ended_total", "TURN allocations the relay ended early: evicted for a fair share, revoked when their leaf detached, capped by lifetime or size.", "why")
	descRelayBytes   = newDesc("relay_bytes_total", "Payload bytes the TURN relay forwarded, both ways.")
	descRelayDropped = newDesc("relay_dropped_bytes_total", "Payload bytes the TURN relay dropped for a bandwidth quota.")
	descSTUN         = newDesc("stun_requests_total", "Datagrams the RFC 5780 STUN service received.")
	descSTUNRefused  = newDesc("stun_refusals_total", "Datagrams the RFC 5780 STUN service dropped, by reason.", "reason")
)

// nodeMetrics is a node's share of its registry: the counters only the node
// keeps, and the counters of supernode roles that have ended.
type nodeMetrics struct {
	reg MetricsRegistry
	// own is set when the node made reg itself (Config.Metrics nil).
	own bool

	promotions, demotions prometheus.Counter
	decisions             *prometheus.CounterVec
	searches              *prometheus.CounterVec
	searchResults         prometheus.Counter
	firstHit              prometheus.Histogram

	mu sync.Mutex // guards stopping and retired
	// stopping are supernode roles being stopped: no longer the node's
	// role, still counting until they are closed.
	stopping []roleSource
	// retired sums the counters of supernode roles that have ended.
	retired map[sampleKey]float64
}

// roleSource is one supernode role and its STUN/TURN services.
type roleSource struct {
	sn  *supernode.Supernode
	svc *natServices
}

// searchFirstHitBuckets are the bounds of the time to a search's first hit:
// from a loopback network (milliseconds) to a timeout (seconds).
var searchFirstHitBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newNodeMetrics(reg MetricsRegistry) *nodeMetrics {
	m := &nodeMetrics{reg: reg, retired: map[sampleKey]float64{}}
	if m.reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		m.reg, m.own = r, true
	}
	m.promotions = prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_promotions_total",
		Help: "Switches of this node to the supernode role (a new network's first supernode included)."})
	m.demotions = prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_demotions_total",
		Help: "Switches of this node from the supernode role back to leaf."})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "canopy_role_decisions_total",
		Help: "Evaluations of the promotion policy, by action and the check that decided."}, []string{"action", "check"})
	m.searches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "canopy_searches_total",
		Help: "Searches this node sent, by result: hits, empty, slow_down (refused for the query rate), no_supernode, error."}, []string{"result"})
	for _, r := range []string{"hits", "empty", "slow_down", "no_supernode", "error"} {
		m.searches.WithLabelValues(r)
	}
	m.searchResults = prometheus.NewCounter(prometheus.CounterOpts{Name: "canopy_search_results_total",
		Help: "Files the node's searches found."})
	m.firstHit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "canopy_search_first_hit_seconds",
		Help: "Time from sending a search to its first hit, for searches that found something.", Buckets: searchFirstHitBuckets})
	return m
}

// switched counts a role change.
func (m *nodeMetrics) switched(to promotion.Role) {
	if to == promotion.RoleSupernode {
		m.promotions.Inc()
	} else {
		m.demotions.Inc()
	}
}

// decided counts a policy evaluation.
func (m *nodeMetrics) decided(d promotion.Decision) {
	m.decisions.WithLabelValues(d.Action.String(), d.Reason.String()).Inc()
}

// searched counts a search that ended with res and err.
func (m *nodeMetrics) searched(res []leaf.Result, err error) {
	result := "error"
	switch {
	case err == nil && len(res) > 0:
		result = "hits"
	case err == nil:
		result = "empty"
	case errors.Is(err, leaf.ErrSlowDown):
		result = "slow_down"
	case errors.Is(err, leaf.ErrNotAttached):
		result = "no_supernode"
	}
	m.searches.WithLabelValues(result).Inc()
	m.searchResults.Add(float64(len(res)))
}

// retiring marks a supernode role that stops being the node's role: its
// counters go on being reported from it until retired.
func (m *nodeMetrics) retiring(src roleSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopping = append(m.stopping, src)
}

// retire folds the final counters of a closed supernode role into the
// totals.
func (m *nodeMetrics) retire(src roleSource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range roleCounters(src) {
		m.retired[s.key()] += s.value
	}
	for i, o := range m.stopping {
		if o.sn == src.sn {
			m.stopping = append(m.stopping[:i], m.stopping[i+1:]...)
			break
		}
	}
}

// roleTotals is every supernode-role counter: what ended roles counted, and
// what the stopping ones and the current one (cur.sn nil: none) count now.
func (m *nodeMetrics) roleTotals(cur roleSource) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := roleCounters(roleSource{}) // every series, at zero
	at := make(map[sampleKey]int, len(out))
	for i := range out {
		k := out[i].key()
		at[k] = i
		out[i].value = m.retired[k]
	}
	srcs := m.stopping
	if cur.sn != nil && !containsRole(srcs, cur.sn) {
		srcs = append(srcs[:len(srcs):len(srcs)], cur)
	}
	for _, src := range srcs {
		for _, s := range roleCounters(src) {
			out[at[s.key()]].value += s.value
		}
	}
	return out
}

func containsRole(srcs []roleSource, sn *supernode.Supernode) bool {
	for _, s := range srcs {
		if s.sn == sn {
			return true
		}
	}
	return false
}

// sample is one series of a collected metric.
type sample struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	value  float64
	labels []string
}

type sampleKey struct {
	desc   *prometheus.Desc
	labels string
}

func (s sample) key() sampleKey { return sampleKey{s.desc, strings.Join(s.labels, "\xff")} }

func (s sample) metric() prometheus.Metric {
	return prometheus.MustNewConstMetric(s.desc, s.kind, s.value, s.labels...)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) sample {
	return sample{desc: d, kind: prometheus.CounterValue, value: float64(v), labels: labels}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) sample {
	return sample{desc: d, kind: prometheus.GaugeValue, value: v, labels: labels}
}

// reasons is a refusal family's series: reason label and count.
type reasons []struct {
	name string
	n    uint64
}

func (rs reasons) samples(d *prometheus.Desc) []sample {
	out := make([]sample, len(rs))
	for i, r := range rs {
		out[i] = counter(d, r.n, r.name)
	}
	return out
}

// roleCounters reads the counters of one supernode role (src.sn nil: every
// series at zero). The refusal reasons are the snake_case names of the
// fields of each part's snapshot.
func roleCounters(src roleSource) []sample {
	var (
		st  supernode.Stats
		ps  supernode.PeopleStats
		ixc index.CountersSnapshot
		gr  gossip.Refusals
	)
	if src.sn != nil {
		st, ps, ixc, gr = src.sn.Stats(), src.sn.PeopleStats(), src.sn.IndexCounters(), src.sn.RingRefusals()
	}
	out := []sample{
		counter(descQueries, st.QueriesFromLeaves, "leaf"),
		counter(descQueries, st.QueriesFromPeers, "peer"),
		counter(descDupQueries, st.DuplicateQueries),
		counter(descHitsRouted, st.HitsRouted),
		counter(descSignals, st.SignalsRelayed),
		counter(descDialBacks, st.DialBacks),
		counter(descPaced, st.RefusalsPaced, "refusals"),
		counter(descPaced, st.IndexUpdatesPaced, "index_rate"),
	}
	out = append(out, reasons{
		{"query_rate", st.QueriesLimited}, {"signal_rate", st.SignalsLimited},
		{"signal_undeliverable", st.SignalsDropped}, {"not_ring_member", st.FromNonMembers},
		{"dialback_rate", st.DialBacksLimited},
		{"parcel_refused", ps.ParcelsRefused}, {"parcel_rate", ps.ParcelsLimited},
		{"presence_publish_refused", ps.PublishesRefused}, {"people_malformed", ps.Malformed},
	}.samples(descSNRefused)...)
	out = append(out, reasons{
		{"bad_file", ixc.BadFiles}, {"owner_files", ixc.OwnerFull}, {"owner_bytes", ixc.OwnerBytes},
		{"index_files", ixc.IndexFull}, {"index_bytes", ixc.IndexBytes}, {"too_many_owners", ixc.TooManyOwners},
	}.samples(descIdxRefused)...)
	out = append(out, reasons{
		{"meta_invalid", gr.MetaInvalid}, {"meta_signature", gr.MetaSignature}, {"meta_name", gr.MetaName},
		{"meta_addr", gr.MetaAddr}, {"meta_stale", gr.MetaStale}, {"unverified", gr.Unverified},
		{"verify_queue_full", gr.VerifyQueueFull}, {"packet_malformed", gr.PacketMalformed},
		{"packet_clock", gr.PacketClock}, {"packet_unknown", gr.PacketUnknown},
		{"packet_signature", gr.PacketSignature}, {"packet_replay", gr.PacketReplay},
		{"stream_handshake", gr.StreamHandshake}, {"stream_meta", gr.StreamMeta},
		{"stream_unverified", gr.StreamUnverified}, {"stream_busy", gr.StreamBusy},
	}.samples(descGossip)...)
	return append(out, serviceCounters(src.svc)...)
}

// serviceCounters reads the counters of a supernode role's STUN/TURN
// services (nil, or a service off: zeros).
func serviceCounters(svc *natServices) []sample {
	var (
		rs relay.Stats
		ss stun.Stats
	)
	if svc != nil && svc.relay != nil {
		rs = svc.relay.Stats()
	}
	if svc != nil && svc.stun != nil {
		ss = svc.stun.Stats()
	}
	r := rs.Refusals
	out := reasons{
		{"auth", r.Auth}, {"detached", r.Detached}, {"revoked", r.Revoked}, {"quota", r.Quota},
		{"peer", r.Peer}, {"tcp_per_addr", r.TCPPerAddr}, {"tcp_pending", r.TCPPending},
		{"tcp_total", r.TCPTotal}, {"tcp_no_auth", r.TCPNoAuth}, {"tcp_per_leaf", r.TCPPerLeaf},
	}.samples(descRelayRefused)
	out = append(out,
		counter(descRelayEnded, r.Evicted, "evicted"),
		counter(descRelayEnded, r.Revocations, "revoked"),
		counter(descRelayEnded, rs.Capped, "capped"),
		counter(descRelayBytes, rs.BytesRelayed),
		counter(descRelayDropped, rs.DroppedBytes),
		counter(descSTUN, ss.Received),
	)
	return append(out, reasons{
		{"oversized", ss.DroppedOversized}, {"not_stun", ss.DroppedNotSTUN}, {"malformed", ss.DroppedMalformed},
		{"unsupported", ss.DroppedUnsupported}, {"rate_limited", ss.DroppedRateLimited},
	}.samples(descSTUNRefused)...)
}

// nodeCollector reports a node's metrics at scrape time.
type nodeCollector struct{ n *Node }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
	m := c.n.metrics
	for _, x := range []prometheus.Collector{m.promotions, m.demotions, m.decisions, m.searches, m.searchResults, m.firstHit} {
		x.Describe(ch)
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n, m := c.n, c.n.metrics
	for _, x := range []prometheus.Collector{m.promotions, m.demotions, m.decisions, m.searches, m.searchResults, m.firstHit} {
		x.Collect(ch)
	}
	n.mu.Lock()
	cur := roleSource{sn: n.sn, svc: n.svc}
	n.mu.Unlock()
	for _, s := range n.nodeSamples(cur) {
		ch <- s.metric()
	}
	for _, s := range m.roleTotals(cur) {
		ch <- s.metric()
	}
}

// nodeSamples reads the node's own counters and gauges, and the gauges of
// its supernode role.
func (n *Node) nodeSamples(cur roleSource) []sample {
	now := time.Now()
	isSN := 0.0
	if cur.sn != nil {
		isSN = 1
	}
	out := []sample{
		gauge(descRole, 1-isSN, RoleLeaf),
		gauge(descRole, isSN, RoleSupernode),
		gauge(descAttached, float64(len(n.leaf.Attachments()))),
		gauge(descPending, float64(n.gate.Pending())),
	}
	if files, err := n.lib.Count(); err == nil {
		out = append(out, gauge(descShared, float64(files)))
	}
	ls := n.lib.Stats()
	out = append(out, counter(descScans, uint64(ls.Scans)), counter(descHashed, uint64(ls.HashedBytes)))

	lr := n.refusals.Snapshot()
	out = append(out, reasons{
		{"pending_full", lr.PendingFull}, {"pending_addr", lr.PendingAddr}, {"handshake", lr.Handshake},
		{"no_hello", lr.NoHello}, {"unknown_role", lr.UnknownRole}, {"not_supernode", lr.NotSupernode},
		{"stranger", lr.Stranger}, {"peer_links", lr.PeerLinks}, {"inbound", lr.Inbound},
		{"leaf_slots", lr.LeafSlots}, {"demoting", lr.Demoting},
	}.samples(descLinkRefused)...)
	out = append(out, counter(descReplaced, lr.Replaced))

	ar := n.APIRefusals()
	out = append(out, reasons{
		{"host", ar.Host}, {"cross_site", ar.CrossSite}, {"origin", ar.Origin}, {"no_token", ar.NoToken},
		{"wrong_token", ar.WrongToken}, {"content_type", ar.ContentType}, {"too_large", ar.TooLarge}, {"out", ar.Out},
	}.samples(descAPIRefused)...)
	out = append(out, reasons{
		{"step_in_ring_not_alone", n.leaf.StepInStats().Refused},
		{"no_reachable_address", n.AdvertStats().Refused},
	}.samples(descRoleRefused)...)

	nat := n.natStatus()
	out = append(out, gauge(descNAT, 1, nat.Kind))
	known, reachable := n.reach.verdict(now)
	for _, v := range []struct {
		name string
		on   bool
	}{{"unknown", !known}, {"reachable", known && reachable}, {"unreachable", known && !reachable}} {
		out = append(out, gauge(descReach, b2f(v.on), v.name))
	}

	ts := n.leaf.TransferStats()
	tr := ts.Refusals
	out = append(out,
		gauge(descXferActive, float64(ts.Uploads), "up"),
		gauge(descXferActive, float64(ts.Downloads), "down"),
		counter(descXferBytes, uint64(ts.UploadedDirect), "up", "direct"),
		counter(descXferBytes, uint64(ts.UploadedRelayed), "up", "relayed"),
		counter(descXferBytes, uint64(ts.DownloadedDirect), "down", "direct"),
		counter(descXferBytes, uint64(ts.DownloadedRelayed), "down", "relayed"),
		counter(descXferPieces, uint64(ts.PiecesVerified), "verified"),
		counter(descXferPieces, uint64(ts.BadPieces), "failed"),
		counter(descXferServed, uint64(ts.PiecesServed)),
		counter(descXferConns, uint64(ts.DirectConnections), "direct"),
		counter(descXferConns, uint64(ts.RelayedConnections), "relayed"),
		counter(descXferBadSrc, uint64(ts.BadSources)),
		counter(descXferAccepted, uint64(ts.UploadsAccepted)),
		counter(descXferSignals, uint64(ts.SignalsDropped)),
		counter(descXferQueued, uint64(tr.Queued)),
		gauge(descXferLimit, ts.UpLimit, "up"),
		gauge(descXferLimit, ts.DownLimit, "down"),
	)
	out = append(out, reasons{
		{"not_shared", tr.NotShared}, {"busy", tr.Busy}, {"busy_at_open", tr.BusyAtOpen},
		{"peer_pending", tr.PeerPending}, {"pending", tr.Pending}, {"peer_offers", tr.PeerOffers},
		{"offer_cache", tr.OfferCache}, {"no_time", tr.NoTime}, {"stale", tr.Stale}, {"future", tr.Future},
		{"replayed", tr.Replayed}, {"pending_expired", tr.PendingExpired}, {"peer_busy", tr.PeerBusy},
	}.samples(descXferRefused)...)

	byState := map[downloads.State]int{}
	for _, j := range n.jobs.List() {
		byState[j.State]++
	}
	for _, s := range []downloads.State{downloads.Queued, downloads.Connecting, downloads.Downloading,
		downloads.Verifying, downloads.Paused, downloads.Done, downloads.Failed} {
		out = append(out, gauge(descJobs, float64(byState[s]), string(s)))
	}

	pst := n.people.Stats()
	out = append(out, reasons{
		{"refused", pst.Refused}, {"blocked", pst.Blocked}, {"requests_limited", pst.RequestsLimited},
		{"unsolicited", pst.Unsolicited}, {"presence_refused", pst.PresenceRefused},
	}.samples(descPeopleRefused)...)
	out = append(out, counter(descPeopleLetters, pst.LettersIn, "in"), counter(descPeopleLetters, pst.LettersOut, "out"))

	var leaves, members, links float64
	var ix struct{ entries, owners, terms, bytes float64 }
	var allocs, allocLeaves, pendingTCP float64
	if cur.sn != nil {
		leaves = float64(len(cur.sn.Leaves()))
		for _, mb := range cur.sn.Members() {
			members++
			if !mb.Self && cur.sn.Linked(mb.Meta.NodeID) {
				links++
			}
		}
		is := cur.sn.IndexStats()
		ix.entries, ix.owners, ix.terms, ix.bytes = float64(is.Files), float64(is.Owners), float64(is.Tokens), float64(cur.sn.IndexBytes())
	}
	if cur.svc != nil && cur.svc.relay != nil {
		rs := cur.svc.relay.Stats()
		allocs, allocLeaves, pendingTCP = float64(rs.Allocations), float64(rs.Leaves), float64(rs.PendingTCP)
	}
	return append(out,
		gauge(descLeaves, leaves), gauge(descRingMembers, members), gauge(descRingLinks, links),
		gauge(descIdxEntries, ix.entries), gauge(descIdxOwners, ix.owners), gauge(descIdxTerms, ix.terms),
		gauge(descIdxBytes, ix.bytes),
		gauge(descRelayAllocs, allocs), gauge(descRelayLeaves, allocLeaves), gauge(descRelayTCP, pendingTCP),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registerMetrics registers the node's collector in its registry. Start
// calls it once every part the collector reads has started.
func (n *Node) registerMetrics() error {
	n.metricsCollector = nodeCollector{n}
	if err := n.metrics.reg.Register(n.metricsCollector); err != nil {
		n.metricsCollector = nil
		return fmt.Errorf("node: metrics: %w (each node needs a registry of its own)", err)
	}
	return nil
}

// unregisterMetrics takes the collector out of the registry, so that an
// injected registry never reads a closed node.
func (n *Node) unregisterMetrics() {
	if n.metricsCollector != nil {
		n.metrics.reg.Unregister(n.metricsCollector)
	}
}

// Metrics returns the registry the node's metrics are in: Config.Metrics,
// or the node's own.
func (n *Node) Metrics() prometheus.Gatherer { return n.metrics.reg }

// search is leaf.Search, counted: the result, the files found and the
// time to the first hit.
func (n *Node) search(ctx context.Context, words string, limit int, f leaf.Filter, onHit func([]leaf.Result)) ([]leaf.Result, error) {
	start := time.Now()
	first := true
	res, err := n.leaf.SearchFiltered(ctx, words, limit, f, func(batch []leaf.Result) {
		if first {
			first = false
			n.metrics.firstHit.Observe(time.Since(start).Seconds())
		}
		if onHit != nil {
			onHit(batch)
		}
	})
	n.metrics.searched(res, err)
	return res, err
}

// debugAPI adds GET /metrics and, when Config.PProf is set, pprof's
// handlers to the API mux, behind the same guard (token, Host, Origin) as
// the rest. pprof's handlers are mounted here explicitly: its import also
// registers them on http.DefaultServeMux, which nothing in Canopy serves.
// Only GET: the guard wants JSON bodies, and pprof's one POST (symbol
// look-ups for old profiles) is not needed by today's go tool pprof.
func (n *Node) debugAPI(mux *http.ServeMux) {
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(n.log.Named("metrics")),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	if !n.cfg.PProf {
		return
	}
	mux.HandleFunc("GET "+PProfPath, pprof.Index)
	mux.HandleFunc("GET "+PProfPath+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+PProfPath+"profile", pprof.Profile)
	mux.HandleFunc("GET "+PProfPath+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+PProfPath+"trace", pprof.Trace)
}
