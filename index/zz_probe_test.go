package index
import ("testing";"time")
func TestProbe(t *testing.T) {
	c := loadCorpus(nil)
	t.Log(len(c.idx.terms[c.idx.termIDs["putruta"]].post), len(c.idx.contents))
	st := time.Now()
	for range 100 { c.idx.Search(Query{Words: "putruta"}) }
	t.Log("putruta", time.Since(st)/100)
	st = time.Now()
	for _, q := range c.queries { c.idx.Search(Query{Words: q}) }
	t.Log("all", time.Since(st)/1000)
}
