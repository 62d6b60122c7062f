package api

import (
	"strings"
	"testing"
)

func TestReadSearchStream(t *testing.T) {
	hit := `{"event":"hit","hit":{"id":"a","name":"x","size":1,"sources":1,"source_nodes":["n"]},"elapsed_ms":1}`
	done := `{"event":"done","elapsed_ms":2,"result":{"hits":[{"id":"a","name":"x","size":1,"sources":1,"source_nodes":["n"]}],"first_hit_ms":1,"elapsed_ms":2}}`
	for _, c := range []struct {
		name, in string
		hits     int
		err      string // "" for success
	}{
		{"hit then done", hit + "\n" + done + "\n", 1, ""},
		{"done only", done + "\n", 0, ""},
		{"newer event skipped", `{"event":"progress"}` + "\n" + hit + "\n" + done, 1, ""},
		{"error line", hit + "\n" + `{"event":"error","error":"supernodes gone"}` + "\n", 1, "supernodes gone"},
		{"cut short", hit + "\n", 1, "without a result"},
		{"hit without file", `{"event":"hit"}`, 0, "a hit without its file"},
		{"done without result", `{"event":"done"}`, 0, "done without the result"},
		{"not JSON", "<html>", 0, "bad search event"},
		{"line too long", `{"event":"hit","hit":{"name":"` + strings.Repeat("x", MaxSearchEventLine) + `"}}`, 0, "too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hits := 0
			res, err := readSearchStream(strings.NewReader(c.in), func(SearchEvent) { hits++ })
			if c.err == "" {
				if err != nil || hits != c.hits || res.ElapsedMS != 2 {
					t.Fatalf("%d hits, %+v, %v", hits, res, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) || hits != c.hits {
				t.Fatalf("%d hits, error %v: want %d and %q", hits, err, c.hits, c.err)
			}
		})
	}
}

// FuzzReadSearchStream: any stream is read to a result or an error, never
// a panic, and a result comes only from a done line.
func FuzzReadSearchStream(f *testing.F) {
	f.Add([]byte(`{"event":"hit","hit":{"id":"a"}}` + "\n" + `{"event":"done","result":{"hits":[]}}`))
	f.Add([]byte(`{"event":"error","error":"x"}`))
	f.Add([]byte("{}\n\n{\"event\":\"done\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := readSearchStream(strings.NewReader(string(data)), func(ev SearchEvent) {
			if ev.Hit == nil {
				t.Fatal("a hit event without its file reached the caller")
			}
		})
		if err == nil && !strings.Contains(string(data), "done") {
			t.Fatalf("a result %+v without a done line", res)
		}
	})
}
