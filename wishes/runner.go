package wishes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/identity"
	"github.com/canopy-p2p/canopy/wire"
)

// DefaultSearchTime is how long one wish search collects hits: a person's
// search waits 3 s; a wish is not in a hurry but must not hold its turn.
const DefaultSearchTime = 5 * time.Second

// attachCheck is how often the runner looks for new supernodes while it
// has nothing to run.
const attachCheck = 5 * time.Second

// Hit is one file a wish search found.
type Hit struct {
	Content content.ID
	Name    string
	Size    int64
	Sources []wire.Source
}

// Config is what a Runner needs from its node.
type Config struct {
	Store  *Store
	Params Params
	// Search runs one wish's search (its words and bounds, blocked nodes
	// hidden) for up to d.
	Search func(ctx context.Context, w Wish, d time.Duration) ([]Hit, error)
	// Held returns a check of whether the node holds a file already
	// (shares it, or downloaded it and it is still there); the runner
	// asks for one per search.
	Held func() func(content.ID) bool
	// Fetch queues a download of h into dir and returns its job ID; an
	// unfinished job for the same file is returned, not doubled.
	Fetch func(h Hit, dir string) (int64, error)
	// Attached lists the supernodes the node is attached to now; a new one
	// makes every wish urgent.
	Attached func() []identity.NodeID
	// SearchTime is one search's duration (0: DefaultSearchTime).
	SearchTime time.Duration
	Logger     *zap.Logger
}

// Runner runs the wishes: one goroutine, started by Start, owns the
// schedule's state.
type Runner struct {
	cfg    Config
	log    *zap.Logger
	poke   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	urgent map[int64]bool // guarded by mu: wishes added since the loop last looked
}

// Start starts the runner; Close stops it.
func Start(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Search == nil || cfg.Held == nil || cfg.Fetch == nil || cfg.Attached == nil {
		return nil, errors.New("wishes: Config needs Store, Search, Held, Fetch and Attached")
	}
	cfg.Params = cfg.Params.withDefaults()
	if cfg.SearchTime <= 0 {
		cfg.SearchTime = DefaultSearchTime
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, log: cfg.Logger, poke: make(chan struct{}, 1), ctx: ctx, cancel: cancel, urgent: map[int64]bool{}}
	// Every wish runs soon after a start: the node was away.
	for _, w := range cfg.Store.List() {
		r.urgent[w.ID] = true
	}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Close stops the runner and waits for its search to end.
func (r *Runner) Close() {
	r.cancel()
	r.wg.Wait()
}

// Add keeps a new wish and runs it as soon as the budget allows.
func (r *Runner) Add(w Wish) (Wish, error) {
	w, err := r.cfg.Store.Add(w, time.Now())
	if err != nil {
		return w, err
	}
	r.mu.Lock()
	r.urgent[w.ID] = true
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
	return w, nil
}

// Remove forgets a wish.
func (r *Runner) Remove(id int64) error { return r.cfg.Store.Remove(id) }

// List returns the wishes.
func (r *Runner) List() []Wish { return r.cfg.Store.List() }

func (r *Runner) loop() {
	defer r.wg.Done()
	var runs []time.Time
	seen := map[identity.NodeID]bool{}
	for _, id := range r.cfg.Attached() {
		seen[id] = true
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		case <-r.poke:
		}
		now := time.Now()
		// A supernode not seen before: every wish is urgent (its leaves'
		// files may be reachable now).
		newSN := false
		for _, id := range r.cfg.Attached() {
			if !seen[id] {
				seen[id], newSN = true, true
			}
		}
		wishes := r.cfg.Store.List()
		r.mu.Lock()
		if newSN {
			for _, w := range wishes {
				r.urgent[w.ID] = true
			}
		}
		slots := make([]Slot, len(wishes))
		for i, w := range wishes {
			slots[i] = Slot{ID: w.ID, LastRun: w.LastRun, Urgent: r.urgent[w.ID]}
		}
		// Forget urgency of removed wishes.
		for id := range r.urgent {
			if !slices.ContainsFunc(wishes, func(w Wish) bool { return w.ID == id }) {
				delete(r.urgent, id)
			}
		}
		r.mu.Unlock()
		runs = slices.DeleteFunc(runs, func(t time.Time) bool {
			return now.Sub(t) >= time.Duration(r.cfg.Params.Burst)*r.cfg.Params.Interval
		})
		d := Next(r.cfg.Params, slots, runs, now)
		if d.Run == 0 {
			timer.Reset(min(d.Wait, attachCheck))
			continue
		}
		if len(r.cfg.Attached()) == 0 {
			// A search would find nothing and spend the turn.
			timer.Reset(attachCheck)
			continue
		}
		r.mu.Lock()
		delete(r.urgent, d.Run)
		r.mu.Unlock()
		runs = append(runs, now)
		i := slices.IndexFunc(wishes, func(w Wish) bool { return w.ID == d.Run })
		r.run(wishes[i], d.Reason)
		timer.Reset(0)
	}
}

// run searches for one wish and fetches its new matches.
func (r *Runner) run(w Wish, why string) {
	start := time.Now()
	hits, err := r.cfg.Search(r.ctx, w, r.cfg.SearchTime)
	if r.ctx.Err() != nil {
		return
	}
	var found []Found
	var errs []error
	have := r.cfg.Held() // once per run: it lists the node's download jobs
	if err != nil {
		errs = append(errs, fmt.Errorf("search: %w", err))
	}
	for _, h := range hits {
		if w.has(h.Content) || slices.ContainsFunc(found, func(f Found) bool { return f.Content == h.Content }) || have(h.Content) {
			continue
		}
		job, err := r.cfg.Fetch(h, w.OutDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("download %s: %w", h.Name, err))
			continue
		}
		found = append(found, Found{Content: h.Content, Name: h.Name, Size: h.Size, Job: job, At: time.Now().UTC()})
	}
	if err := r.cfg.Store.ran(w.ID, start, found, errors.Join(errs...)); err != nil {
		r.log.Warn("wish not recorded", zap.Int64("wish", w.ID), zap.Error(err))
	}
	r.log.Info("wish searched", zap.Int64("wish", w.ID), zap.String("words", w.Words), zap.String("why", why),
		zap.Int("hits", len(hits)), zap.Int("new", len(found)), zap.Error(errors.Join(errs...)))
}

// Revision changes each time the wishes or what they found change.
func (r *Runner) Revision() int64 { return r.cfg.Store.Revision() }

// Params returns the schedule in force.
func (r *Runner) Params() Params { return r.cfg.Params }
