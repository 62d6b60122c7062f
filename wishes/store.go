package wishes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/canopy-p2p/canopy/content"
	"github.com/canopy-p2p/canopy/internal/atomicfile"
)

// FileName is the wishes' file in the data directory.
const FileName = "wishes.json"

// Bounds of what a node keeps.
const (
	// MaxWishes bounds the wishes of one node: the schedule's cost does
	// not grow with them, but each is a line a person reads.
	MaxWishes = 100
	// MaxWords bounds a wish's words, in bytes (a search's words are
	// bounded the same on the wire).
	MaxWords = 200
	// MaxExts bounds a wish's extensions.
	MaxExts = 16
	// MaxFound bounds the matches a wish remembers (the newest are kept);
	// a content ID it forgot is still never fetched twice while the file
	// is held or its download job is kept.
	MaxFound = 200
	// maxFileBytes bounds the file read back: MaxWishes full wishes with
	// MaxFound matches each fit with room to spare.
	maxFileBytes = 16 << 20
	fileVersion  = 1
)

// ErrBadWish reports a wish that cannot be kept: no words, too long,
// bad bounds, too many.
var ErrBadWish = errors.New("wishes: bad wish")

// ErrNotFound reports a wish ID that is not there.
var ErrNotFound = errors.New("wishes: no such wish")

// Wish is one standing search.
type Wish struct {
	ID    int64  `json:"id"`
	Words string `json:"words"`
	// MinSize and MaxSize bound the files' sizes (MaxSize 0: none); Ext
	// lists the extensions wanted (empty: any).
	MinSize int64    `json:"min_size,omitempty"`
	MaxSize int64    `json:"max_size,omitempty"`
	Ext     []string `json:"ext,omitempty"`
	// OutDir is where its downloads go.
	OutDir  string    `json:"out_dir"`
	Created time.Time `json:"created"`
	// LastRun is when it last searched, Runs how often; LastError what
	// went wrong the last time (empty: nothing).
	LastRun   time.Time `json:"last_run,omitempty"`
	Runs      int       `json:"runs"`
	LastError string    `json:"last_error,omitempty"`
	// Found are the matches it downloaded, oldest first.
	Found []Found `json:"found,omitempty"`
}

// Found is one match a wish downloaded.
type Found struct {
	Content content.ID `json:"content"`
	Name    string     `json:"name"`
	Size    int64      `json:"size"`
	// Job is the download job fetching it.
	Job int64     `json:"job"`
	At  time.Time `json:"at"`
}

// has reports whether the wish found id.
func (w *Wish) has(id content.ID) bool {
	return slices.ContainsFunc(w.Found, func(f Found) bool { return f.Content == id })
}

// check validates a wish as a user gave it.
func (w *Wish) check() error {
	w.Words = strings.TrimSpace(w.Words)
	switch {
	case w.Words == "":
		return fmt.Errorf("%w: no words", ErrBadWish)
	case len(w.Words) > MaxWords || !utf8.ValidString(w.Words):
		return fmt.Errorf("%w: words must be valid text of at most %d bytes", ErrBadWish, MaxWords)
	case w.MinSize < 0 || w.MaxSize < 0 || (w.MaxSize > 0 && w.MaxSize < w.MinSize):
		return fmt.Errorf("%w: size bounds min %d, max %d", ErrBadWish, w.MinSize, w.MaxSize)
	case len(w.Ext) > MaxExts:
		return fmt.Errorf("%w: more than %d extensions", ErrBadWish, MaxExts)
	case !strings.HasPrefix(w.OutDir, "/"):
		return fmt.Errorf("%w: the download directory %q is not absolute", ErrBadWish, w.OutDir)
	}
	for i, e := range w.Ext {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "" || len(e) > 16 || strings.ContainsAny(e, "./\\") {
			return fmt.Errorf("%w: extension %q", ErrBadWish, w.Ext[i])
		}
		w.Ext[i] = e
	}
	return nil
}

// file is the stored form.
type file struct {
	Version int    `json:"version"`
	NextID  int64  `json:"next_id"`
	Wishes  []Wish `json:"wishes"`
}

// Store keeps the wishes in one file, written whole and atomically after
// every change (a crash leaves the old file or the new one). It is safe
// for concurrent use.
type Store struct {
	path string
	mu   sync.Mutex
	f    file
	// rev counts the changes kept, so that a watcher rebuilds the list
	// only when it changed. Guarded by mu.
	rev int64
}

// Open reads the wishes at path (none when the file does not exist). A
// damaged file is an error naming it: wishes are the user's intent, never
// dropped silently.
func Open(path string) (*Store, error) {
	s := &Store{path: path, f: file{Version: fileVersion, NextID: 1}}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wishes: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wishes: read %s: %w", path, err)
	}
	f, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("wishes: %s: %w (move it aside to start without wishes)", path, err)
	}
	s.f = f
	return s, nil
}

// decode reads and checks a stored file.
func decode(b []byte) (file, error) {
	var f file
	if len(b) > maxFileBytes {
		return f, fmt.Errorf("larger than %d bytes", maxFileBytes)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("not a wishes file: %w", err)
	}
	if f.Version != fileVersion {
		return f, fmt.Errorf("version %d, this program knows %d", f.Version, fileVersion)
	}
	if len(f.Wishes) > MaxWishes {
		return f, fmt.Errorf("%d wishes, at most %d", len(f.Wishes), MaxWishes)
	}
	ids := map[int64]bool{}
	for i := range f.Wishes {
		w := &f.Wishes[i]
		if err := w.check(); err != nil {
			return f, fmt.Errorf("wish %d: %w", w.ID, err)
		}
		if w.ID <= 0 || w.ID >= f.NextID || ids[w.ID] {
			return f, fmt.Errorf("wish ID %d repeated or out of range", w.ID)
		}
		ids[w.ID] = true
		if len(w.Found) > MaxFound {
			return f, fmt.Errorf("wish %d: %d matches, at most %d", w.ID, len(w.Found), MaxFound)
		}
	}
	return f, nil
}

// saveLocked writes the file. s.mu is held.
func (s *Store) saveLocked() error {
	b, err := json.MarshalIndent(s.f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path, b, 0o600); err != nil {
		return fmt.Errorf("wishes: save: %w", err)
	}
	return nil
}

// change applies fn to a copy of the wishes and keeps it once it is saved:
// a failed save changes nothing.
func (s *Store) change(fn func(f *file) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.f
	s.f = clone(old)
	if err := fn(&s.f); err != nil {
		s.f = old
		return err
	}
	if err := s.saveLocked(); err != nil {
		s.f = old
		return err
	}
	s.rev++
	return nil
}

// Revision changes each time a change is kept.
func (s *Store) Revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

func clone(f file) file {
	f.Wishes = slices.Clone(f.Wishes)
	for i := range f.Wishes {
		f.Wishes[i].Ext = slices.Clone(f.Wishes[i].Ext)
		f.Wishes[i].Found = slices.Clone(f.Wishes[i].Found)
	}
	return f
}

// Add keeps a new wish and returns it with its ID.
func (s *Store) Add(w Wish, now time.Time) (Wish, error) {
	w.Ext = slices.Clone(w.Ext)
	if err := w.check(); err != nil {
		return Wish{}, err
	}
	w.Created, w.LastRun, w.Runs, w.LastError, w.Found = now.UTC(), time.Time{}, 0, "", nil
	err := s.change(func(f *file) error {
		if len(f.Wishes) >= MaxWishes {
			return fmt.Errorf("%w: already %d wishes, the most a node keeps", ErrBadWish, MaxWishes)
		}
		w.ID = f.NextID
		f.NextID++
		f.Wishes = append(f.Wishes, w)
		return nil
	})
	return w, err
}

// Remove forgets a wish (its downloads go on).
func (s *Store) Remove(id int64) error {
	return s.change(func(f *file) error {
		i := slices.IndexFunc(f.Wishes, func(w Wish) bool { return w.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		f.Wishes = slices.Delete(f.Wishes, i, i+1)
		return nil
	})
}

// List returns the wishes, oldest first.
func (s *Store) List() []Wish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.f).Wishes
}

// Get returns one wish.
func (s *Store) Get(id int64) (Wish, error) {
	for _, w := range s.List() {
		if w.ID == id {
			return w, nil
		}
	}
	return Wish{}, fmt.Errorf("%w: %d", ErrNotFound, id)
}

// ran records a search of wish id at when, what it found and what went
// wrong (runErr nil: nothing). A wish removed meanwhile is left alone.
func (s *Store) ran(id int64, when time.Time, found []Found, runErr error) error {
	return s.change(func(f *file) error {
		i := slices.IndexFunc(f.Wishes, func(w Wish) bool { return w.ID == id })
		if i < 0 {
			return nil
		}
		w := &f.Wishes[i]
		w.LastRun, w.Runs, w.LastError = when.UTC(), w.Runs+1, ""
		if runErr != nil {
			w.LastError = runErr.Error()
		}
		w.Found = append(w.Found, found...)
		if over := len(w.Found) - MaxFound; over > 0 {
			w.Found = slices.Delete(w.Found, 0, over)
		}
		return nil
	})
}
