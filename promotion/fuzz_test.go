package promotion

import "testing"

// FuzzParse feeds the params file decoder arbitrary bytes: it must never
// panic, and whatever it accepts must be valid and survive Encode and Parse
// unchanged.
func FuzzParse(f *testing.F) {
	def, err := Encode(File{Source: "seed", Params: DefaultParams()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Add([]byte("version = 1\n[params]\nmin_uptime = \"45m\"\nneed_threshold = 0.8\n"))
	f.Add([]byte("version = 1\n[params]\nmin_dwell = 60000000000\nmin_free_fds = 9\nkeep_free_fds = 1\n"))
	f.Add([]byte("version = 2\n"))
	f.Add([]byte("[params]\nbogus = true\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		if err := file.Params.Validate(); err != nil {
			t.Fatalf("Parse accepted invalid params: %v", err)
		}
		enc, err := Encode(file)
		if err != nil {
			t.Fatalf("Encode of a parsed file: %v", err)
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse of an encoded file: %v\n%s", err, enc)
		}
		if again != file {
			t.Fatalf("round trip changed the file:\n%+v\n%+v", file, again)
		}
	})
}
