package index

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Bounds on what Tokenize returns and reads. They bound the work and memory
// one file name or one query can cost a supernode, whatever a peer sends.
const (
	// MaxTokens is the most tokens Tokenize returns; later words are ignored.
	// 64 distinct words is far more than any real file name or query holds.
	MaxTokens = 64

	// MaxTokenBytes is the longest token in bytes. Longer words are cut at a
	// rune boundary, so a query for the same long word still meets them.
	MaxTokenBytes = 64

	// MaxInputBytes is how much of its argument Tokenize reads. It is larger
	// than MaxTokens full tokens joined by spaces, so tokenizing a token list
	// again never loses a token.
	MaxInputBytes = 8192

	// MinPrefixRunes is how many runes the last query word needs before it
	// also matches longer words that start with it (see Index.Search).
	MinPrefixRunes = 3
)

// foldPool holds the normalization chains. A transform.Chain keeps state and
// buffers between calls, so it cannot be shared, and building one allocates
// several kilobytes: pooling makes Tokenize cheap under concurrent searches.
// The pool holds no observable state, so many indexes in one process are
// unaffected by each other.
var foldPool = sync.Pool{New: func() any { return newFolder() }}

// newFolder builds the normalization that makes spellings of one word meet:
//
//   - NFKD splits letters from their accents and maps compatibility forms
//     (ligatures, full-width and half-width forms, superscripts) to plain ones;
//   - removing nonspacing marks drops the accents, so "Café" becomes "cafe";
//   - full case folding makes "Straße" and "STRASSE" one word and maps the
//     Greek final sigma to the ordinary one;
//   - NFC recomposes what must stay together: Hangul jamo back into syllables
//     (one rune, three bytes, instead of up to three runes) and kana with their
//     voicing marks.
func newFolder() transform.Transformer {
	return transform.Chain(norm.NFKD, runes.Remove(runes.Predicate(isDroppedMark)), cases.Fold(), runes.Map(foldCherokee), norm.NFC)
}

// foldCherokee maps Cherokee small letters to their capitals, as Unicode's
// CaseFolding.txt does. x/text's cases.Fold swaps the two cases instead
// (Ᏹ → ᏹ but ᏹ → Ᏹ), so folding twice would not give what folding once gave
// and a name would not match its own folded form. The fuzzer found it.
func foldCherokee(r rune) rune {
	switch {
	case r >= 0x13F8 && r <= 0x13FD: // small ye … small mv
		return r - 8
	case r >= 0xAB70 && r <= 0xABBF: // small a … small ya
		return r - 0xAB70 + 0x13A0
	}
	return r
}

// isDroppedMark reports whether r is an accent Tokenize removes. The kana
// voicing marks are kept: in Japanese they change the syllable (カ "ka" and
// ガ "ga"), they are not decoration, and NFC puts them back on their kana.
func isDroppedMark(r rune) bool {
	return unicode.Is(unicode.Mn, r) && r != '\u3099' && r != '\u309a'
}

// Tokenize splits a file name or a query into the normalized, distinct words
// that the index matches. File names and queries go through the same
// function, so they meet whatever their spelling:
//
//   - normalization and case folding as described on newFolder: "Café" →
//     "cafe", "Straße" → "strasse", "ΣΊΣΥΦΟΣ" and "σίσυφος" → "σισυφοσ";
//   - a word is a run of letters, digits and spacing marks (the vowel signs of
//     Indic scripts, which would otherwise cut every word into pieces);
//     anything else separates words, so "My_Song-01.mp3" gives my, song, 01,
//     mp3;
//   - Han, Hiragana, Katakana and Hangul are written without spaces between
//     words, so a run of them becomes overlapping bigrams ("東京都" → 東京,
//     京都), and a run of one rune stays one token. Bigrams, the choice of
//     Lucene's CJK analyzer, match a two-rune query word exactly and keep
//     postings far shorter than single runes would; a one-rune query finds
//     the bigrams that start with it through the prefix match of Search;
//   - tokens are deduplicated in order of first appearance; at most MaxTokens
//     are returned, each cut to MaxTokenBytes at a rune boundary, and only the
//     first MaxInputBytes of s are read.
//
// Invalid UTF-8 separates words. Scripts written without spaces that are not
// listed above (Thai, Lao, Khmer, Myanmar) need a dictionary to find words;
// their runs stay whole tokens. Tokenize is safe for concurrent use.
func Tokenize(s string) []string {
	if len(s) > MaxInputBytes {
		cut := MaxInputBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return splitWords(fold(s), nil)
}

// fold normalizes s as newFolder describes.
func fold(s string) string {
	if isASCII(s) {
		// NFKD, NFC and the accent removal leave ASCII unchanged and case
		// folding of ASCII is lower-casing: skip the transformer, which costs
		// far more than the loop. Most file names are ASCII.
		return asciiLower(s)
	}
	if !utf8.ValidString(s) {
		// Normalizers pass invalid bytes through; turning them into a
		// separator first keeps every token valid UTF-8.
		s = strings.ToValidUTF8(s, " ")
	}
	t := foldPool.Get().(transform.Transformer)
	out, _, err := transform.String(t, s)
	foldPool.Put(t)
	if err != nil {
		// The chain fails only on internal errors it does not produce on
		// valid UTF-8; an unnormalized name is still better than none.
		return s
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII s, allocating only when it has upper case.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// splitWords appends the words of the folded string s to out, as Tokenize
// describes. The tokens are substrings of s: callers that keep one for long
// should clone it so it does not pin the whole of s.
func splitWords(s string, out []string) []string {
	for i := 0; i < len(s) && len(out) < MaxTokens; {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isCJK(r):
			start := i
			i += n
			single := true
			for i < len(s) && len(out) < MaxTokens {
				r2, n2 := utf8.DecodeRuneInString(s[i:])
				if !isCJK(r2) {
					break
				}
				out = appendToken(out, s[start:i+n2])
				single = false
				start = i
				i += n2
			}
			if single {
				out = appendToken(out, s[start:i])
			}
		case isWordRune(r):
			start := i
			i += n
			for i < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[i:])
				if !isWordRune(r2) || isCJK(r2) {
					break
				}
				i += n2
			}
			out = appendToken(out, s[start:i])
		default:
			i += n
		}
	}
	return out
}

// appendToken cuts t to MaxTokenBytes and appends it unless out has it. A
// linear search is cheaper than a map for at most MaxTokens short strings.
func appendToken(out []string, t string) []string {
	if len(t) > MaxTokenBytes {
		cut := MaxTokenBytes
		for cut > 0 && !utf8.RuneStart(t[cut]) {
			cut--
		}
		t = t[:cut]
	}
	for _, o := range out {
		if o == t {
			return out
		}
	}
	return append(out, t)
}

// isWordRune reports whether r belongs in a word: letters, digits and other
// numbers, and spacing combining marks (see Tokenize).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mc, r)
}

// cjkScripts are the scripts Tokenize cuts into bigrams.
var cjkScripts = []*unicode.RangeTable{unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul}

// isCJK reports whether r is a word rune of a script written without spaces
// that Tokenize cuts into bigrams. The prolonged sound mark ー belongs to no
// script but is part of katakana words ("ラーメン"), so it counts too.
func isCJK(r rune) bool {
	if r < 0x1100 {
		// Below the Hangul Jamo block no rune of these scripts exists; the
		// early return keeps Latin, Greek and Cyrillic text off the tables.
		return false
	}
	if r == 'ー' {
		return true
	}
	return unicode.IsOneOf(cjkScripts, r) && (unicode.IsLetter(r) || unicode.IsNumber(r))
}
