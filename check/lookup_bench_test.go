package check_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kengen/kengen/check"
)

// BenchmarkLookupResourcesExclusion lists the documents a user may view where view has an
// exclusion, so that every candidate the reverse walk finds must be decided by the check
// engine (unlike the CRM dataset's unions, whose candidates are certain): 5,000 documents in
// 50 folders under one root the user views, one in ten of them banning the user. The
// candidates share their folders and the root, which one bulk evaluation answers once. Each
// iteration uses a new Checker, so neither the reverse walk nor the sub-problem cache is
// reused.
func BenchmarkLookupResourcesExclusion(b *testing.B) {
	var rels []string
	rels = append(rels, "document:root#viewer@user:amy")
	for f := range 50 {
		rels = append(rels, fmt.Sprintf("document:folder%02d#parent@document:root", f))
	}
	for d := range 5000 {
		rels = append(rels, fmt.Sprintf("document:doc%04d#parent@document:folder%02d", d, d%50))
		if d%10 == 0 {
			rels = append(rels, fmt.Sprintf("document:doc%04d#banned@user:amy", d))
		}
	}
	f := newFixture(b, lookupSchema, rels...)
	r := f.reader()
	n := 0
	for b.Loop() {
		found, err := check.New(check.Options{}).LookupResources(context.Background(), r, check.ResourcesRequest{
			ResourceType: "document", Permission: "view", SubjectType: "user", SubjectID: "amy"})
		if err != nil {
			b.Fatal(err)
		}
		n = len(found)
	}
	if n != 5000-500+51 {
		b.Fatalf("%d documents, want %d", n, 5000-500+51)
	}
	b.ReportMetric(float64(n), "docs")
}
