package validation

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kengen/kengen/check"
	"github.com/kengen/kengen/store"
)

// parseAssertion reads `res:id#permission@subj:id[#rel]`, optionally followed by
// ` with {json caveat context}`.
func parseAssertion(s string) (check.Request, error) {
	s = strings.TrimSpace(s)
	relText, ctxText, hasCtx := strings.Cut(s, " with ")
	relText = strings.TrimSpace(relText)
	if i := strings.IndexAny(relText, " \t"); i >= 0 {
		return check.Request{}, fmt.Errorf("unexpected %q after the relationship (caveat context is written ` with {json}`)", relText[i:])
	}
	r, err := store.ParseRelationship(relText)
	if err != nil {
		return check.Request{}, err
	}
	if r.Caveat != "" || !r.Expiration.IsZero() {
		return check.Request{}, errors.New("an assertion takes no caveat or expiration; give caveat context with ` with {json}`")
	}
	req := check.Request{
		ResourceType:    r.ResourceType,
		ResourceID:      r.ResourceID,
		Permission:      r.Relation,
		SubjectType:     r.SubjectType,
		SubjectID:       r.SubjectID,
		SubjectRelation: r.SubjectRelation,
	}
	if hasCtx {
		ctx, err := parseContext(ctxText)
		if err != nil {
			return check.Request{}, err
		}
		req.Context = ctx
	}
	return req, nil
}

// parseContext reads exactly one JSON object.
func parseContext(s string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var ctx map[string]any
	if err := dec.Decode(&ctx); err != nil {
		return nil, fmt.Errorf("caveat context after `with` is not a JSON object: %w", err)
	}
	if ctx == nil {
		return nil, errors.New("caveat context after `with` is not a JSON object: null")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected text after the caveat context's JSON object")
	}
	return ctx, nil
}

// parseObjectRef reads `type:id` or `type:id#relation` (`#...` is no relation). With
// needRelation the relation is required.
func parseObjectRef(s string, needRelation bool) (ObjectRef, error) {
	s = strings.TrimSpace(s)
	typ, rest, ok := strings.Cut(s, ":")
	if !ok || typ == "" {
		return ObjectRef{}, fmt.Errorf("%q is not `type:id`", s)
	}
	id, rel, hasRel := strings.Cut(rest, "#")
	if id == "" {
		return ObjectRef{}, fmt.Errorf("%q has an empty id", s)
	}
	if hasRel && rel == "" {
		return ObjectRef{}, fmt.Errorf("%q has an empty relation after '#'", s)
	}
	if rel == "..." {
		rel = ""
	}
	if needRelation && rel == "" {
		return ObjectRef{}, fmt.Errorf("%q needs a relation: `type:id#relation`", s)
	}
	if strings.ContainsAny(typ+id+rel, " \t[]{}<>@,") {
		return ObjectRef{}, fmt.Errorf("%q has characters not allowed in a type, id or relation", s)
	}
	return ObjectRef{Type: typ, ID: id, Relation: rel}, nil
}

// parseExpectedSubject reads `[subject] is <res:id#rel>/<res:id#rel>...`, where subject is
// `type:id[#rel]`, optionally caveated (`user:sarah[caveatname]`) and, for a wildcard,
// optionally with exclusions (`user:* - {user:fred, user:bob}`).
func parseExpectedSubject(s string) (ExpectedSubject, error) {
	es := ExpectedSubject{Text: strings.TrimSpace(s)}
	s = es.Text
	if !strings.HasPrefix(s, "[") {
		return es, errors.New("expected `[subject] is <resource:id#relation>`")
	}
	end := closingBracket(s)
	if end < 0 {
		return es, errors.New("the subject's '[' is not closed")
	}
	inner, rest := s[1:end], s[end+1:]

	subj, excl, hasExcl := strings.Cut(inner, " - ")
	ref, caveated, err := parseCaveatedRef(subj)
	if err != nil {
		return es, err
	}
	es.Subject, es.Caveated = ref, caveated
	if hasExcl {
		excl = strings.TrimSpace(excl)
		if !strings.HasPrefix(excl, "{") || !strings.HasSuffix(excl, "}") {
			return es, fmt.Errorf("exclusions %q must be written `{type:id, ...}`", excl)
		}
		for _, part := range strings.Split(excl[1:len(excl)-1], ",") {
			ref, _, err := parseCaveatedRef(part)
			if err != nil {
				return es, fmt.Errorf("exclusion: %w", err)
			}
			es.Excluded = append(es.Excluded, ref)
		}
	}

	rest = strings.TrimSpace(rest)
	if rest == "" {
		return es, nil
	}
	after, ok := strings.CutPrefix(rest, "is ")
	if !ok {
		return es, fmt.Errorf("expected `is <resource:id#relation>` after the subject, found %q", rest)
	}
	for _, part := range strings.Split(after, "/<") {
		part = strings.TrimSpace(part)
		part = strings.TrimPrefix(part, "<")
		if !strings.HasSuffix(part, ">") {
			return es, fmt.Errorf("relation %q must be written `<resource:id#relation>`", part)
		}
		ref, err := parseObjectRef(strings.TrimSuffix(part, ">"), true)
		if err != nil {
			return es, err
		}
		es.Via = append(es.Via, ref)
	}
	return es, nil
}

// parseCaveatedRef reads `type:id[#rel]` optionally followed by `[caveat]`.
func parseCaveatedRef(s string) (ObjectRef, bool, error) {
	s = strings.TrimSpace(s)
	caveated := false
	if i := strings.IndexByte(s, '['); i >= 0 {
		if !strings.HasSuffix(s, "]") {
			return ObjectRef{}, false, fmt.Errorf("%q: caveat marker must be `[name]` at the end", s)
		}
		s, caveated = s[:i], true
	}
	ref, err := parseObjectRef(s, false)
	return ref, caveated, err
}

// closingBracket returns the index of the ']' that closes s[0] == '[', or -1.
func closingBracket(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
