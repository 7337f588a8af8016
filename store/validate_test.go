package store

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The hand-written checks accept exactly what the documented patterns accept.
func TestValidationMatchesPatterns(t *testing.T) {
	check := func(s string) {
		t.Helper()
		if got, want := isObjectType(s), objectTypePattern.MatchString(s); got != want {
			t.Errorf("isObjectType(%q) = %v, the pattern says %v", s, got, want)
		}
		if got, want := isObjectID(s), objectIDPattern.MatchString(s); got != want {
			t.Errorf("isObjectID(%q) = %v, the pattern says %v", s, got, want)
		}
		if got, want := isRelation(s), relationPattern.MatchString(s); got != want {
			t.Errorf("isRelation(%q) = %v, the pattern says %v", s, got, want)
		}
	}
	for _, s := range []string{"", "*", "**", "a", "ab", "abc", "ab_", "a_b", "_ab", "1ab", "Abc", "abc\n",
		"tenant/document", "te/document", "tenant/do", "tenant//document", "/tenant", "tenant/", "a/b/c",
		"abc/def/ghi", "abc-def", "x|y=z+1/_-", "user:1", "é", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("a", 65), strings.Repeat("a", 63) + "/abc", strings.Repeat("a", 64) + "/abc", "abc/" + strings.Repeat("b", 64),
		"abc/" + strings.Repeat("b", 65)} {
		check(s)
	}
	alphabet := "abz09_/*|-=+AZ:#.é\n"
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
		// Long names around the length limits.
		check(strings.Repeat("a", 60+r.IntN(8)) + string(b))
	}
}

func FuzzValidationMatchesPatterns(f *testing.F) {
	for _, s := range []string{"tenant/document", "abc", "*", "a|b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isObjectType(s) != objectTypePattern.MatchString(s) || isObjectID(s) != objectIDPattern.MatchString(s) ||
			isRelation(s) != relationPattern.MatchString(s) {
			t.Fatalf("%q: the checks and the patterns disagree", s)
		}
	})
}
