package store

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/kengen/kengen/schema"
)

// The patterns are the contract, printed in error messages; the checks below (isObjectType,
// isObjectID, isRelation) implement them without the regexp engine, which cost a tenth of the
// time of applying large batches (validate_test.go checks that they agree).
var (
	objectTypePattern = regexp.MustCompile(`^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	objectIDPattern   = regexp.MustCompile(`^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$`)
	relationPattern   = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
)

// maxObjectIDLen is the longest object id accepted, in bytes.
const maxObjectIDLen = 1024

// ValidateObjectType reports whether s is a well-formed object type (`document`,
// `tenant/document`), wrapping ErrInvalid if not.
func ValidateObjectType(s string) error {
	if !isObjectType(s) {
		return fmt.Errorf("%w: object type %q must match %s", ErrInvalid, s, objectTypePattern)
	}
	return nil
}

// ValidateObjectID reports whether s is a well-formed object id (at most 1024 bytes of
// letters, digits and /_|-=+, or `*`), wrapping ErrInvalid if not. Whether `*` is allowed
// depends on the position (subjects only), which the caller checks.
func ValidateObjectID(s string) error {
	if len(s) > maxObjectIDLen {
		return fmt.Errorf("%w: object id of %d bytes is longer than %d", ErrInvalid, len(s), maxObjectIDLen)
	}
	if !isObjectID(s) {
		return fmt.Errorf("%w: object id %q must match %s", ErrInvalid, s, objectIDPattern)
	}
	return nil
}

// ValidateRelation reports whether s is a well-formed relation name, wrapping ErrInvalid if
// not.
func ValidateRelation(s string) error {
	if !isRelation(s) {
		return fmt.Errorf("%w: relation %q must match %s", ErrInvalid, s, relationPattern)
	}
	return nil
}

// isObjectType matches objectTypePattern: `/`-separated names, each a lower-case letter,
// then lower-case letters, digits and `_`, ending in a letter or digit; 3 to 63 bytes for the
// prefixes and 3 to 64 for the last name.
func isObjectType(s string) bool {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return isName(s, 64)
		}
		if !isName(s[:i], 63) {
			return false
		}
		s = s[i+1:]
	}
}

// isRelation matches relationPattern.
func isRelation(s string) bool { return isName(s, 64) }

// isName reports whether s is [a-z][a-z0-9_]{1,max-2}[a-z0-9].
func isName(s string, max int) bool {
	if len(s) < 3 || len(s) > max {
		return false
	}
	if c := s[0]; c < 'a' || c > 'z' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	c := s[len(s)-1]
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// isObjectID matches objectIDPattern: `*`, or one or more of letters, digits and /_|-=+.
func isObjectID(s string) bool {
	if s == "" {
		return false
	}
	if s == "*" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '/', c == '_', c == '|', c == '-', c == '=', c == '+':
		default:
			return false
		}
	}
	return true
}

// within puts context after the sentinel prefix of an ErrInvalid error:
// `store: invalid relationship: <context>: <detail>`.
func within(err error, format string, args ...any) error {
	ctx := fmt.Sprintf(format, args...)
	msg := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
	if errors.Is(err, ErrInvalid) {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, ctx, msg)
	}
	return fmt.Errorf("%s: %w", ctx, err)
}

// relText prints rel as `type:id#relation@type:id[#relation]`, for error messages.
func relText(rel *Relationship) string {
	s := rel.ResourceType + ":" + rel.ResourceID + "#" + rel.Relation + "@" + rel.SubjectType + ":" + rel.SubjectID
	if rel.SubjectRelation != "" {
		s += "#" + rel.SubjectRelation
	}
	return s
}

// normalise rewrites the subject relation `...` to "" (a plain object).
func normalise(rel *Relationship) {
	if rel.SubjectRelation == "..." {
		rel.SubjectRelation = ""
	}
}

// validateSyntax checks the form of every identity field of rel.
func validateSyntax(rel *Relationship) error {
	if err := ValidateObjectType(rel.ResourceType); err != nil {
		return within(err, "resource type of %s", relText(rel))
	}
	if rel.ResourceID == Wildcard {
		return fmt.Errorf("%w: resource id of %s: `*` is allowed only as a subject id", ErrInvalid, relText(rel))
	}
	if err := ValidateObjectID(rel.ResourceID); err != nil {
		return within(err, "resource id of %s", relText(rel))
	}
	if err := ValidateRelation(rel.Relation); err != nil {
		return within(err, "relation of %s", relText(rel))
	}
	if err := ValidateObjectType(rel.SubjectType); err != nil {
		return within(err, "subject type of %s", relText(rel))
	}
	if err := ValidateObjectID(rel.SubjectID); err != nil {
		return within(err, "subject id of %s", relText(rel))
	}
	if rel.SubjectRelation != "" {
		if err := ValidateRelation(rel.SubjectRelation); err != nil {
			return within(err, "subject relation of %s", relText(rel))
		}
		if rel.SubjectID == Wildcard {
			return fmt.Errorf("%w: subject of %s: a wildcard subject cannot have a subject relation", ErrInvalid, relText(rel))
		}
	}
	if rel.Caveat == "" && len(rel.CaveatContext) > 0 {
		return fmt.Errorf("%w: %s has a caveat context but no caveat", ErrInvalid, relText(rel))
	}
	return nil
}

// validateAgainst checks that sch admits rel: its resource type and relation exist, the
// relation is a `relation` and not a `permission`, and one of its allowed subject entries
// admits the subject with its caveat and expiration.
func validateAgainst(sch *schema.Schema, rel *Relationship) (*schema.Relation, error) {
	r, err := relationOf(sch, rel)
	if err != nil {
		return nil, err
	}
	if r.Allows(rel.SubjectType, rel.SubjectRelation, rel.SubjectID == Wildcard, rel.Caveat, !rel.Expiration.IsZero()) == nil {
		return nil, fmt.Errorf("%w: %s: relation %s#%s does not allow subject %s", ErrInvalid, relText(rel), rel.ResourceType, rel.Relation, subjectShape(rel.SubjectType, rel.SubjectRelation, rel.SubjectID == Wildcard, rel.Caveat, !rel.Expiration.IsZero()))
	}
	if err := validateCaveatContext(sch, rel); err != nil {
		return nil, err
	}
	return r, nil
}

// validateCaveatContext checks that every value of rel's caveat context is a parameter of its
// caveat and fits that parameter's type, so that a context no check could evaluate is refused
// when it is written rather than failing every later check through the relationship.
func validateCaveatContext(sch *schema.Schema, rel *Relationship) error {
	if rel.Caveat == "" || len(rel.CaveatContext) == 0 {
		return nil
	}
	c := sch.Caveat(rel.Caveat)
	if c == nil {
		return nil // Allows refused an unknown caveat already
	}
	types := make(map[string]string, len(c.Parameters))
	names := make([]string, len(c.Parameters))
	for i, p := range c.Parameters {
		types[p.Name] = p.Type
		names[i] = p.Name + " " + p.Type
	}
	keys := make([]string, 0, len(rel.CaveatContext))
	for k := range rel.CaveatContext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		typ, ok := types[k]
		if !ok {
			return fmt.Errorf("%w: %s: caveat %s has no parameter %q (its parameters: %s)", ErrInvalid, relText(rel), c.Name, k, strings.Join(names, ", "))
		}
		if _, err := schema.ConvertCaveatValue(typ, rel.CaveatContext[k]); err != nil {
			return fmt.Errorf("%w: %s: caveat context parameter %q of caveat %s: %w; want a %s", ErrInvalid, relText(rel), k, c.Name, err, typ)
		}
	}
	return nil
}

// relationOf returns the schema relation rel is written to, refusing an unknown type or
// relation and a permission.
func relationOf(sch *schema.Schema, rel *Relationship) (*schema.Relation, error) {
	ns := sch.Namespace(rel.ResourceType)
	if ns == nil {
		return nil, fmt.Errorf("%w: %s: resource type %q is not defined in the schema", ErrInvalid, relText(rel), rel.ResourceType)
	}
	r := ns.Relation(rel.Relation)
	if r == nil {
		return nil, fmt.Errorf("%w: %s: definition %s has no relation %q", ErrInvalid, relText(rel), rel.ResourceType, rel.Relation)
	}
	if r.IsPermission {
		return nil, fmt.Errorf("%w: %s: %s#%s is a permission; relationships can be written only to relations", ErrInvalid, relText(rel), rel.ResourceType, rel.Relation)
	}
	return r, nil
}

// subjectShape prints a subject type the way a schema's type list writes it:
// `user`, `user:*`, `group#member`, `user with ip_allowed and expiration`.
func subjectShape(subjType, subjRel string, wildcard bool, caveat string, expiring bool) string {
	s := subjType
	switch {
	case wildcard:
		s += ":*"
	case subjRel != "":
		s += "#" + subjRel
	}
	switch {
	case caveat != "" && expiring:
		s += " with " + caveat + " and expiration"
	case caveat != "":
		s += " with " + caveat
	case expiring:
		s += " with expiration"
	}
	return s
}

// validateFilter checks a filter of a precondition or a delete: ResourceType is required.
func validateFilter(f *Filter, what string) error {
	if f.ResourceType == "" {
		return fmt.Errorf("%w: %s filter needs a resource type", ErrInvalid, what)
	}
	if err := ValidateObjectType(f.ResourceType); err != nil {
		return within(err, "%s filter resource type", what)
	}
	if f.ResourceID != "" && f.ResourceIDPrefix != "" {
		return fmt.Errorf("%w: %s filter has both a resource id and a resource id prefix", ErrInvalid, what)
	}
	if f.ResourceID != "" {
		if err := ValidateObjectID(f.ResourceID); err != nil {
			return within(err, "%s filter resource id", what)
		}
	}
	if f.Relation != "" {
		if err := ValidateRelation(f.Relation); err != nil {
			return within(err, "%s filter relation", what)
		}
	}
	if sf := f.Subject; sf != nil {
		if err := ValidateObjectType(sf.Type); err != nil {
			return within(err, "%s filter subject type", what)
		}
		if sf.ID != "" {
			if err := ValidateObjectID(sf.ID); err != nil {
				return within(err, "%s filter subject id", what)
			}
		}
		if sf.RelationSet && sf.Relation != "" && sf.Relation != "..." {
			if err := ValidateRelation(sf.Relation); err != nil {
				return within(err, "%s filter subject relation", what)
			}
		}
	}
	return nil
}

// filterText prints a filter for error messages.
func filterText(f *Filter) string {
	s := f.ResourceType
	switch {
	case f.ResourceID != "":
		s += ":" + f.ResourceID
	case f.ResourceIDPrefix != "":
		s += ":" + f.ResourceIDPrefix + "*"
	}
	if f.Relation != "" {
		s += "#" + f.Relation
	}
	if sf := f.Subject; sf != nil {
		s += "@" + sf.Type
		if sf.ID != "" {
			s += ":" + sf.ID
		}
		if sf.RelationSet {
			if sf.Relation == "" || sf.Relation == "..." {
				s += "#..."
			} else {
				s += "#" + sf.Relation
			}
		}
	}
	return s
}
