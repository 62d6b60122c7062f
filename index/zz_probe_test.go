package index
import ("testing";"time";"slices")
func TestProbe(t *testing.T) {
	c := loadCorpus(nil)
	var lens []int
	st := time.Now()
	type qt struct{ d time.Duration; q string; n int }
	var qs []qt
	for _, q := range c.queries {
		s := time.Now()
		h := c.idx.Search(Query{Words: q})
		qs = append(qs, qt{time.Since(s), q, len(h)})
		lens = append(lens, len(h))
	}
	t.Log("total", time.Since(st), c.idx.Stats(), c.bytes)
	slices.SortFunc(qs, func(a, b qt) int { return int(b.d - a.d) })
	for _, q := range qs[:10] { t.Log(q) }
	t.Log(qs[len(qs)/2])
}
