package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRelationship(t *testing.T) {
	long := strings.Repeat("very", 250) + "long" // 1004 bytes
	tests := []struct {
		in   string
		want Relationship
		// canon is the canonical String(); "" means the input is already canonical.
		canon string
	}{
		{
			in:    "document:firstdoc#viewer@user:tom#...",
			want:  Relationship{ResourceType: "document", ResourceID: "firstdoc", Relation: "viewer", SubjectType: "user", SubjectID: "tom"},
			canon: "document:firstdoc#viewer@user:tom",
		},
		{
			in:   "document:1#viewer@group:eng#member",
			want: Relationship{ResourceType: "document", ResourceID: "1", Relation: "viewer", SubjectType: "group", SubjectID: "eng", SubjectRelation: "member"},
		},
		{
			in:   "document:1#viewer@user:*",
			want: Relationship{ResourceType: "document", ResourceID: "1", Relation: "viewer", SubjectType: "user", SubjectID: Wildcard},
		},
		{
			in: `document:firstdoc#viewer@user:tom[some_caveat:{"somecondition":42}]`,
			want: Relationship{ResourceType: "document", ResourceID: "firstdoc", Relation: "viewer", SubjectType: "user", SubjectID: "tom",
				Caveat: "some_caveat", CaveatContext: map[string]any{"somecondition": float64(42)}},
		},
		{
			in: `resource:first#reader@user:sarah[some_caveat:{"z": [1, "a"], "a": {"b": true, "n": null}}]`,
			want: Relationship{ResourceType: "resource", ResourceID: "first", Relation: "reader", SubjectType: "user", SubjectID: "sarah",
				Caveat: "some_caveat", CaveatContext: map[string]any{"z": []any{float64(1), "a"}, "a": map[string]any{"b": true, "n": nil}}},
			canon: `resource:first#reader@user:sarah[some_caveat:{"a":{"b":true,"n":null},"z":[1,"a"]}]`,
		},
		{
			in: "doc:1#viewer@user:tom[somecaveat][expiration:2023-12-01T00:00:00Z]",
			want: Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer", SubjectType: "user", SubjectID: "tom",
				Caveat: "somecaveat", Expiration: time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			in: "doc:1#viewer@user:tom[expiration:2023-12-01T01:00:00.5+01:00]",
			want: Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer", SubjectType: "user", SubjectID: "tom",
				Expiration: time.Date(2023, 12, 1, 0, 0, 0, 500_000_000, time.UTC)},
			canon: "doc:1#viewer@user:tom[expiration:2023-12-01T00:00:00.5Z]",
		},
		{
			// An empty context is no context.
			in:    "doc:1#viewer@user:tom[c:{}]",
			want:  Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer", SubjectType: "user", SubjectID: "tom", Caveat: "c"},
			canon: "doc:1#viewer@user:tom[c]",
		},
		{
			// A caveat may be named expiration; a JSON object tells it from a timestamp.
			in: `doc:1#viewer@user:tom[expiration:{"a":"]"}]`,
			want: Relationship{ResourceType: "doc", ResourceID: "1", Relation: "viewer", SubjectType: "user", SubjectID: "tom",
				Caveat: "expiration", CaveatContext: map[string]any{"a": "]"}},
		},
		{
			in: "org/identity_team/group:megagroup#member@org/identity_team/group:ultragroup#member[foo/bar/only_on_tuesday]",
			want: Relationship{ResourceType: "org/identity_team/group", ResourceID: "megagroup", Relation: "member",
				SubjectType: "org/identity_team/group", SubjectID: "ultragroup", SubjectRelation: "member", Caveat: "foo/bar/only_on_tuesday"},
		},
		{
			in: "document:--=base64YWZzZGZh-ZHNmZHPwn5iK8J+YivC/fmIrwn5iK==#reader@user:" + long,
			want: Relationship{ResourceType: "document", ResourceID: "--=base64YWZzZGZh-ZHNmZHPwn5iK8J+YivC/fmIrwn5iK==", Relation: "reader",
				SubjectType: "user", SubjectID: long},
		},
		{
			in:   "resource:foo/bar//baz|qux#viewer@user:a_b",
			want: Relationship{ResourceType: "resource", ResourceID: "foo/bar//baz|qux", Relation: "viewer", SubjectType: "user", SubjectID: "a_b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRelationship(tt.in)
			if err != nil {
				t.Fatalf("ParseRelationship: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRelationship = %#v, want %#v", got, tt.want)
			}
			canon := tt.canon
			if canon == "" {
				canon = tt.in
			}
			if s := got.String(); s != canon {
				t.Errorf("String() = %q, want %q", s, canon)
			}
			again, err := ParseRelationship(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip of %q = %#v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseRelationshipErrors(t *testing.T) {
	tests := []struct {
		in string
		// want are substrings of the error message.
		want []string
	}{
		{"", []string{"column 1", "expected resource type, found end of string"}},
		{"document", []string{"column 9", `expected ':' after the resource type`}},
		{"Document:1#viewer@user:tom", []string{"column 1", "expected resource type"}},
		{"document:#viewer@user:tom", []string{"column 10", "expected resource id"}},
		{"document:a b#viewer@user:tom", []string{"column 11", `expected '#' after the resource id, found ' '`}},
		{"document:1#viewer", []string{"column 18", "expected '@' after the relation"}},
		{"document:1#Viewer@user:tom", []string{"column 12", "expected relation"}},
		{"document:1#1viewer@user:tom", []string{"relation must start with a lower-case letter"}},
		{"document:1#viewer@user:", []string{"expected subject id, found end of string"}},
		{"document:1#viewer@user:tom#", []string{"expected subject relation"}},
		{"document:1#viewer@user:tom extra", []string{"column 27", `unexpected " extra"`}},
		{"org//user:1#viewer@user:tom", []string{"empty segment"}},
		{"org/:1#viewer@user:tom", []string{"ends with '/'"}},
		{"document:1#" + strings.Repeat("a", 65) + "@user:tom", []string{"longer than 64"}},
		{"document:" + strings.Repeat("a", 1025) + "#viewer@user:tom", []string{"column 10", "resource id is longer than 1024"}},
		{`resource:first#reader@user:sarah[some_caveat{"somecondition": 42}]`, []string{"column 45", `expected ']' closing the caveat, found '{'`}},
		{`resource:first#reader@user:sarah[some_caveat:42]`, []string{"expected a JSON object after the caveat name"}},
		{`resource:first#reader@user:sarah[some_caveat:{"a":}]`, []string{"caveat context is not a valid JSON object"}},
		{`resource:first#reader@user:sarah[some_caveat`, []string{"closing the caveat, found end of string"}},
		{"doc:1#viewer@user:tom[expiration:tomorrow]", []string{`expiration "tomorrow" is not an RFC 3339 time`}},
		{"doc:1#viewer@user:tom[expiration:2023-12-01T00:00:00Z", []string{"expected ']' closing the expiration"}},
		{"doc:1#viewer@user:tom[expiration:2023-12-01T00:00:00Z][c]", []string{`unexpected "[c]"`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseRelationship(tt.in)
			if err == nil {
				t.Fatalf("ParseRelationship(%q) succeeded, want an error", tt.in)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzRelationshipString(f *testing.F) {
	for _, s := range []string{
		"document:firstdoc#viewer@user:tom#...",
		"document:1#viewer@group:eng#member",
		"document:1#viewer@user:*",
		`document:firstdoc#viewer@user:tom[some_caveat:{"somecondition":42}]`,
		`doc:1#viewer@user:tom[c:{"a":[1.5,"x",{"b":null}],"s":"\u2028]"}][expiration:2023-12-01T00:00:00.123+02:00]`,
		"doc:1#viewer@user:tom[somecaveat][expiration:2023-12-01T00:00:00Z]",
		"org/team/doc:a/b|c-d=e+f_g#viewer@org/team/user:x[org/cav]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRelationship(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		printed := r.String()
		again, err := ParseRelationship(printed)
		if err != nil {
			t.Fatalf("ParseRelationship(%q) (printed from %q): %v", printed, s, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip of %q via %q: got %#v, want %#v", s, printed, again, r)
		}
		if again.String() != printed {
			t.Fatalf("String() is not stable: %q then %q", printed, again.String())
		}
	})
}
