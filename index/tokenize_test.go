package index

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/transform"
)

func TestTokenize(t *testing.T) {
	long := strings.Repeat("a", 100)
	cyr := "a" + strings.Repeat("ж", 40) // 81 bytes; ж is 2 bytes
	var many []string
	var manyWant []string
	for i := range 100 {
		w := "w" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		many = append(many, w)
		if i < MaxTokens {
			manyWant = append(manyWant, w)
		}
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only separators", "!!! ... ---", nil},
		{"punctuation and digits", "My_Song-01.mp3", []string{"my", "song", "01", "mp3"}},
		{"accent", "Café", []string{"cafe"}},
		{"accents and case", "CAFÉ crème Brûlée", []string{"cafe", "creme", "brulee"}},
		{"german sharp s", "Straße", []string{"strasse"}},
		{"capital sharp s", "STRAẞE", []string{"strasse"}},
		{"greek capitals", "ΣΊΣΥΦΟΣ", []string{"σισυφοσ"}},
		{"cherokee small and capital meet", "ᏹᏣ ᎠᏣ", []string{"ᏱᏣ", "ᎠᏣ"}},
		{"cherokee supplement", "\uab70", []string{"Ꭰ"}},
		{"greek final sigma", "σίσυφος", []string{"σισυφοσ"}},
		{"turkish dotted capital", "İstanbul", []string{"istanbul"}},
		{"ligature", "ﬁle", []string{"file"}},
		{"full width", "Ｆｕｌｌ　Ｗｉｄｔｈ ２０２４", []string{"full", "width", "2024"}},
		{"superscript", "E=mc²", []string{"e", "mc2"}},
		{"duplicates keep first order", "b a B A b", []string{"b", "a"}},
		{"digits", "Track 01 of 12 (1999)", []string{"track", "01", "of", "12", "1999"}},
		{"han bigrams", "東京都", []string{"東京", "京都"}},
		{"han single", "東", []string{"東"}},
		{"mixed scripts split", "abc東京def", []string{"abc", "東京", "def"}},
		{"katakana with long vowel mark", "ラーメン", []string{"ラー", "ーメ", "メン"}},
		{"voiced kana keep their mark", "ガンダム", []string{"ガン", "ンダ", "ダム"}},
		{"half-width kana", "ｶﾞﾝﾀﾞﾑ", []string{"ガン", "ンダ", "ダム"}},
		{"hangul syllables", "한국어 노래", []string{"한국", "국어", "노래"}},
		{"devanagari vowel signs stay in the word", "हिंदी गाना", []string{"हिदी", "गाना"}},
		{"cyrillic", "Кино — Группа крови", []string{"кино", "группа", "крови"}},
		{"invalid utf-8 separates", "ab\xffcd\xc3", []string{"ab", "cd"}},
		{"long token cut", long, []string{long[:MaxTokenBytes]}},
		{"long token cut at rune boundary", cyr, []string{cyr[:63]}},
		{"cut tokens deduplicated", long + "b " + long + "c", []string{long[:MaxTokenBytes]}},
		{"token count bound", strings.Join(many, " "), manyWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Tokenize(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTokenizeLongInput(t *testing.T) {
	// Far past MaxInputBytes: only the bound's worth is read, and nothing
	// panics when the cut falls inside a rune.
	s := strings.Repeat("é,", 10_000)
	got := Tokenize(s)
	if !slices.Equal(got, []string{"e"}) {
		t.Fatalf("got %q", got)
	}
	if got := Tokenize(strings.Repeat("-", MaxInputBytes) + "late"); got != nil {
		t.Fatalf("word after MaxInputBytes was read: %q", got)
	}
}

// slowFold is fold without the ASCII shortcut.
func slowFold(s string) string {
	out, _, err := transform.String(newFolder(), strings.ToValidUTF8(s, " "))
	if err != nil {
		return s
	}
	return out
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"", "My_Song-01.mp3", "Café Straße ΣΊΣΥΦΟΣ", "東京都 ラーメン ｶﾞﾝﾀﾞﾑ 한국어",
		"हिंदी", "ab\xffcd", strings.Repeat("ж", 50), "İı ǅ ﬃ ẞ ᾈ", "\u0345\u3099a\u3099",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		if len(toks) > MaxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
		for i, tok := range toks {
			if tok == "" || len(tok) > MaxTokenBytes || !utf8.ValidString(tok) {
				t.Fatalf("bad token %q", tok)
			}
			if slices.Contains(toks[:i], tok) {
				t.Fatalf("duplicate token %q in %q", tok, toks)
			}
		}
		if again := Tokenize(strings.Join(toks, " ")); !slices.Equal(again, toks) {
			t.Fatalf("not idempotent: %q → %q → %q", s, toks, again)
		}
		if len(s) <= MaxInputBytes && isASCII(s) {
			if slow := splitWords(slowFold(s), nil); !slices.Equal(slow, toks) {
				t.Fatalf("ASCII shortcut differs: %q → %q, slow path %q", s, toks, slow)
			}
		}
	})
}

func BenchmarkTokenize(b *testing.B) {
	for _, tt := range []struct{ kind, name string }{
		{"ascii", "Artist Name - Some Song Title (Remastered 2011).mp3"},
		{"latin", "Sigur Rós - Ágætis byrjun - 03 - Starálfur.flac"},
		{"cjk", "宇多田ヒカル - First Love.mp3"},
	} {
		b.Run(tt.kind, func(b *testing.B) {
			for b.Loop() {
				Tokenize(tt.name)
			}
		})
	}
}
